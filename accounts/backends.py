from __future__ import annotations

from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_lockout_parameters
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

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


class LoginLimitsHandler(AxesDatabaseHandler):
    """django-axes' database handler, with a limit for each lockout group.

    AXES_LOCKOUT_PARAMETERS counts failures per (account, address) pair, per address
    and per account; axes compares the busiest group with its one AXES_FAILURE_LIMIT
    (the pair's). Here each group is shifted onto that scale first, so that each
    locks at its own limit: the address at AXES_ADDRESS_FAILURE_LIMIT, the account
    at AXES_ACCOUNT_FAILURE_LIMIT.

    A successful sign-in clears its own pair only: clearing the address's or the
    account's failures (axes' default) would let anyone with an account reset their
    address's count by signing in to it between guesses.
    """

    @staticmethod
    def group_limit(group: str | list[str]) -> int:
        parameters = {group} if isinstance(group, str) else set(group)
        if parameters == {"username", "ip_address"}:
            return settings.AXES_FAILURE_LIMIT
        if parameters == {"ip_address"}:
            return settings.AXES_ADDRESS_FAILURE_LIMIT
        if parameters == {"username"}:
            return settings.AXES_ACCOUNT_FAILURE_LIMIT
        raise ImproperlyConfigured(f"no failure limit for the lockout group {group!r}")

    def get_failures(self, request: HttpRequest, credentials: dict[str, Any] | None = None) -> int:
        """What axes compares with AXES_FAILURE_LIMIT: the highest of each group's
        failures plus how far below its own limit the pair's limit is."""
        groups = get_lockout_parameters(request, credentials)
        attempts = self.get_user_attempts(request, credentials)
        return max(
            (
                (group_attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0)
                + settings.AXES_FAILURE_LIMIT
                - self.group_limit(group)
                for group, group_attempts in zip(groups, attempts, strict=True)
            ),
            default=0,
        )

    def reset_user_attempts(
        self, request: HttpRequest, credentials: dict[str, Any] | None = None
    ) -> int:
        count, _ = AccessAttempt.objects.filter(
            username=get_client_username(request, credentials),
            ip_address=request.axes_ip_address,  # type: ignore[attr-defined]
        ).delete()
        return count


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: Any
) -> HttpResponse:
    """429 with a page that says how long sign-in is paused, never whose account, and
    the same in ``Retry-After`` (the whole cool-off: it runs from the last failure)."""
    seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
    minutes = max(1, seconds // 60)
    response = render(request, "accounts/locked_out.html", {"cooloff_minutes": minutes}, status=429)
    response["Retry-After"] = str(seconds)
    return response
