"""The site's URLs and error handlers, plus views that fail on purpose."""

from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.http import HttpRequest, HttpResponse
from django.urls import path

from config import urls

PRIVATE_DETAIL = "refund for jane.doe@example.com failed: card 4242 4242 4242 4242"


def crash(request: HttpRequest) -> HttpResponse:
    raise RuntimeError(PRIVATE_DETAIL)


def forbidden(request: HttpRequest) -> HttpResponse:
    raise PermissionDenied(PRIVATE_DETAIL)


def suspicious(request: HttpRequest) -> HttpResponse:
    raise SuspiciousOperation(PRIVATE_DETAIL)


urlpatterns = [
    *urls.urlpatterns,
    path("test/crash", crash),
    path("test/forbidden", forbidden),
    path("test/suspicious", suspicious),
]

handler400 = urls.handler400
handler403 = urls.handler403
handler404 = urls.handler404
handler500 = urls.handler500
