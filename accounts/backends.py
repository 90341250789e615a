from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from core.encryption import blind_index


class EmailBackend(ModelBackend):
    """Log in by email in any letter case: the lookup is by blind index."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        email: str | None = None,
        **kwargs: Any,
    ) -> Any:
        return super().authenticate(request, username=email or username, password=password)


def axes_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """What django-axes stores as the username: the blind index, not the email."""
    raw = (credentials or {}).get("username") or (credentials or {}).get("email")
    if raw is None and request is not None:
        raw = request.POST.get("username")
    return blind_index(raw) if raw else ""
