from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control

from core.http import (
    client_ip,
    current_client_ip,
    current_request_id,
    current_user,
    request_id_from,
)


class RequestContextMiddleware:
    """Give every request an id (``X-Request-ID``) that logs, audit and errors share."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_from(request.headers.get("X-Request-ID"))
        request.request_id = request_id  # type: ignore[attr-defined]  # read by views, logs
        id_token = current_request_id.set(request_id)
        ip_token = current_client_ip.set(client_ip(request))
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(id_token)
            current_client_ip.reset(ip_token)
        response["X-Request-ID"] = request_id
        return response


class ActorContextMiddleware:
    """Make the signed-in user known to code that has no request (model saves and
    their audit entries), for the length of the request. After authentication."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # request.user stays lazy: the session is read only if someone asks.
        token = current_user.set(getattr(request, "user", None))
        try:
            return self.get_response(request)
        finally:
            current_user.reset(token)


class SecurityHeadersMiddleware:
    """The headers Django's SecurityMiddleware does not set.

    Responses are ``no-store`` unless a view chose its own caching: every dynamic page
    here is either personal, authenticated or admin, and static files are served by
    WhiteNoise before this runs.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        response.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        if not response.has_header("Cache-Control") or (
            getattr(request, "user", None) is not None and request.user.is_authenticated
        ):
            patch_cache_control(response, no_store=True, private=True)
        return response
