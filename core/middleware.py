"""Request middleware every app relies on and that knows no domain."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from core.timezones import viewer_zone


class TimeZoneMiddleware:
    """Activate the signed-in person's own time zone (UTC when they chose none) for the
    request, so the admin, ``|date`` and the API's datetimes are in it.

    Pages about a booking or a builder choose their zone explicitly (the booking's or
    the builder's may differ from this one), and say which. Goes after
    AuthenticationMiddleware.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        timezone.activate(viewer_zone(getattr(request, "user", None)))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
