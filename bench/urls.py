"""The site's URLs plus two views to compare the webhook endpoint with.

``bench/trivial/`` is the cheapest Django view: it goes through the same middleware
stack and reads a body of the same size as a webhook delivery, so "ingest vs trivial"
measures what the webhook endpoint itself costs (verification, storage), not HTTP or
Django. ``bench/insert/`` also writes that body as one row, committed (the table
``bench_durable_write``, which the benchmark creates): the durable-write limit, the
least an endpoint that answers "stored" can cost.
"""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from config import urls as site_urls


@csrf_exempt
def trivial(request: HttpRequest) -> HttpResponse:
    request.read()
    return JsonResponse({"status": "ok"})


@csrf_exempt
def insert(request: HttpRequest) -> HttpResponse:
    body = request.read().decode()
    with connection.cursor() as cursor:  # autocommit: one round trip, committed
        cursor.execute("INSERT INTO bench_durable_write (body) VALUES (%s)", [body])
    return JsonResponse({"status": "stored"})


urlpatterns = [
    path("bench/trivial/", trivial, name="bench-trivial"),
    path("bench/insert/", insert, name="bench-insert"),
    path("", include(site_urls)),
]

# Django reads the error handlers from the root URLconf only.
handler400 = site_urls.handler400
handler403 = site_urls.handler403
handler404 = site_urls.handler404
handler500 = site_urls.handler500
