"""The site's URLs plus ``bench/trivial/``: the cheapest Django view, for comparison.

The trivial view goes through the same middleware stack and reads a body of the same
size as a webhook delivery, so "ingest vs trivial" measures what the webhook endpoint
itself costs (verification, storage, audit, publishing), not HTTP or Django.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from config import urls as site_urls


@csrf_exempt
def trivial(request: HttpRequest) -> HttpResponse:
    request.read()
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("bench/trivial/", trivial, name="bench-trivial"),
    path("", include(site_urls)),
]

# Django reads the error handlers from the root URLconf only.
handler400 = site_urls.handler400
handler403 = site_urls.handler403
handler404 = site_urls.handler404
handler500 = site_urls.handler500
