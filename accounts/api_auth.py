"""The API's token authentication (``Authorization: Bearer slp_...``) and the scope check.

``ApiTokenAuthentication`` comes first in DEFAULT_AUTHENTICATION_CLASSES: DRF answers
an unauthenticated request with its first class's ``WWW-Authenticate``, so anonymous
callers get 401 and a Bearer challenge (session authentication alone would give 403).
A request with no ``Bearer`` header falls through to the session (the site's own pages
and the API docs in a browser); one with a ``Bearer`` header that is not a live token
is refused, whatever its session.

DRF authenticates a token when the view first reads ``request.user``, after
core.middleware.TimeZoneMiddleware activated the zone of the then anonymous request
(UTC). The token's account's own zone is activated here instead, so that the API's
datetimes carry the same offset as with a session; the middleware deactivates it when
the response is done.

Scopes limit tokens, not people: each API view names its ``required_scope`` and
``TokenHasScope`` refuses a token without it (403, naming the scope). A session-signed
request is not limited by scopes. A view that names no scope is refused to every
token, so a new view is closed to tokens until someone decides which scope it needs.
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.conf import settings
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework import exceptions, permissions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from accounts import tokens
from accounts.models import ApiToken
from core.http import client_ip
from core.timezones import viewer_zone

# Longer than any header of ours: refused before it is even split.
MAX_HEADER_LENGTH = 200
REALM = "Slotpay API"

MESSAGES = {
    "malformed": "That is not a Slotpay API token (they read slp_...).",
    "unknown": "That token is not valid.",
    "expired": "That token has expired: make a new one on your account's tokens page.",
    "revoked": "That token was revoked: make a new one on your account's tokens page.",
    "inactive": "That token's account is closed.",
    "unverified": tokens.VERIFY_FIRST,
}


class InsufficientScope(exceptions.PermissionDenied):
    """403 for a token without the scope a view needs; ``scope`` names it (the API's
    error handler adds it to a ``WWW-Authenticate`` challenge, as RFC 6750 asks)."""

    def __init__(self, scope: str) -> None:
        super().__init__(f"This token does not have the {scope} scope this request needs.")
        self.scope = scope


class ApiTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <token>``; returns ``(user, ApiToken)``."""

    keyword = "bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = request.META.get("HTTP_AUTHORIZATION")
        if not isinstance(header, str) or not header:
            return None
        if len(header) > MAX_HEADER_LENGTH:
            # Too long for ours; if it even claims to be a Bearer token, refuse it.
            if header[: len(self.keyword)].lower() == self.keyword:
                self._refuse(request, "malformed")
            return None
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != self.keyword:
            return None  # Basic or another scheme: not ours (nor anyone's, here)
        try:
            token = tokens.api_token_authenticate(raw=credentials.strip(), ip=client_ip(request))
        except tokens.TokenRefused as refused:
            self._refuse(request, refused.reason)
        timezone.activate(viewer_zone(token.user))
        return token.user, token

    def _refuse(self, request: Request, reason: str) -> NoReturn:
        request._api_token_refused = True  # type: ignore[attr-defined]  # read below
        raise exceptions.AuthenticationFailed(MESSAGES[reason])

    def authenticate_header(self, request: Request) -> str:
        if getattr(request, "_api_token_refused", False):
            return f'Bearer realm="{REALM}", error="invalid_token"'
        return f'Bearer realm="{REALM}"'


class TokenHasScope(permissions.BasePermission):
    """A token needs the view's ``required_scope``; a session needs none."""

    def has_permission(self, request: Request, view: Any) -> bool:
        token = request.auth
        if not isinstance(token, ApiToken):
            return True
        needed = getattr(view, "required_scope", None)
        if needed is None:
            raise exceptions.PermissionDenied("API tokens cannot be used here.")
        if needed not in token.scopes:
            raise InsufficientScope(needed)
        return True


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """The token scheme in the OpenAPI schema (beside DRF's ``cookieAuth``)."""

    target_class = "accounts.api_auth.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        definition: dict[str, Any] = build_bearer_security_scheme_object(
            header_name="Authorization",
            # The scheme's name, not a password (ruff S106, bandit B106).
            token_prefix="Bearer",  # noqa: S106  # nosec B106
            bearer_format="slp_...",
        )
        definition["description"] = (
            "A personal API token, made on the account's tokens page (/accounts/tokens/) "
            "and shown once. Scopes: "
            + ", ".join(f"`{value}` ({label.lower()})" for value, label in ApiToken.Scope.choices)
            + f". Each operation names the scope it needs; a token lasts at most "
            f"{settings.API_TOKEN_MAX_DAYS} days."
        )
        return definition
