"""Step-up re-authentication ("sudo mode") for the actions that move money or rights,
erase a person or replay a provider's event.

Staff re-enter their password (and a TOTP code if they enrolled a device) on the
step-up page (``accounts.stepup``), which stamps the session. The stamp is absolute,
not sliding: it holds for ``STEP_UP_MAX_AGE_SECONDS`` after the password was given,
whatever is done meanwhile, and only for the user who gave it. Signing in never
stamps: a stolen session cookie alone cannot move money.

Views use :func:`step_up_required`; admin classes use :class:`StepUpAdminMixin`
(for their actions) or :func:`stepped_up_or_redirect` (in custom admin views).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, ClassVar
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

SESSION_KEY = "step_up"


def mark_stepped_up(request: HttpRequest, *, method: str) -> None:
    """Record in the session that the signed-in user just proved it is them."""
    request.session[SESSION_KEY] = {
        "user": request.user.pk,
        "at": time.time(),
        "method": method,
    }


def stepped_up_at(request: HttpRequest) -> float | None:
    """When the signed-in user last stepped up in this session, if still valid."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    stamp = request.session.get(SESSION_KEY)
    if not isinstance(stamp, dict) or stamp.get("user") != user.pk:
        return None
    at = stamp.get("at")
    if not isinstance(at, int | float):
        return None
    age = time.time() - at
    if age < 0 or age > settings.STEP_UP_MAX_AGE_SECONDS:
        return None
    return float(at)


def is_stepped_up(request: HttpRequest) -> bool:
    return stepped_up_at(request) is not None


def safe_next(request: HttpRequest, candidate: str | None, *, fallback: str = "/admin/") -> str:
    """``candidate`` if it is a path on this site, else ``fallback``."""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return fallback


def step_up_url(next_url: str) -> str:
    return f"{reverse('accounts:step_up')}?{urlencode({'next': next_url})}"


def redirect_to_step_up(request: HttpRequest, next_url: str | None = None) -> HttpResponse:
    """Send the person to confirm their password, then back to ``next_url`` (by
    default the page they are on; for a POST, the page the form was on, since a
    form's values cannot survive the detour)."""
    if next_url is None:
        if request.method == "GET":
            next_url = request.get_full_path()
        else:
            next_url = safe_next(request, request.headers.get("Referer"), fallback=request.path)
    if request.method != "GET":
        messages.info(request, "Confirm it is you, then submit again.")
    return HttpResponseRedirect(step_up_url(next_url))


def stepped_up_or_redirect(
    request: HttpRequest, next_url: str | None = None
) -> HttpResponse | None:
    """None if the request may go on; else the redirect to the step-up page."""
    if is_stepped_up(request):
        return None
    return redirect_to_step_up(request, next_url)


def step_up_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Decorate a view (after the login and permission checks) to need a fresh step-up."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        refused = stepped_up_or_redirect(request)
        if refused is not None:
            return refused
        return view(request, *args, **kwargs)

    return wrapped


class StepUpAdminMixin:
    """For a ModelAdmin: the admin actions named in ``step_up_actions`` need a fresh
    step-up. Without one, the person is sent to step up and back to the list, with
    nothing done."""

    step_up_actions: ClassVar[frozenset[str]] = frozenset()

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        action = request.POST.get("action") if request.method == "POST" else None
        if (
            action in self.step_up_actions
            and not is_stepped_up(request)
            # Only for an action this person may take: anyone else gets the admin's
            # own refusal at once, not a password prompt first.
            and action in self.get_actions(request)  # type: ignore[attr-defined]
        ):
            return redirect_to_step_up(request, request.get_full_path())
        return super().changelist_view(request, extra_context)  # type: ignore[misc]
