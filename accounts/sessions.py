"""Session lifetimes, enforced on the server at every request, and "sign out everywhere".

A signed-in session carries a clock (``session[CLOCK_KEY]``): when it began and when it
was last used. :class:`SessionLimitsMiddleware` refuses a session older than its
absolute lifetime, idle longer than its idle timeout (staff have shorter limits of
both), or begun before its user's ``sessions_valid_after`` ("sign out everywhere", a
password reset). The cookie's own age is only an outer bound: neither the browser nor a
copied cookie decides how long a session lasts.

Refusing flushes the session (its row goes, a new key, nothing kept) and lets the
request go on as anonymous: a public page renders as for anyone, a sign-in page signs in,
the API answers ``not_authenticated``; a page that needs a sign-in is sent to the
"session ended" page instead of the bare sign-in form, which says why and offers a link
back by email (accounts.recovery). For that, the new anonymous session keeps who it was
and the page they were on (sealed), nothing more.

The clock lives in the session's data, so the limits hold with either engine: in the
database the client cannot see it, in a signed cookie it cannot alter it (an older copy
of the cookie only carries an older clock, refused sooner).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import SESSION_KEY, logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.urls import Resolver404, resolve, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from encrypted_model_fields.fields import decrypt_str, encrypt_str

import audit
from accounts import links, tokens
from accounts.models import OneTimeLink, User
from audit.services import record_capped

CLOCK_KEY = "session_clock"
ENDED_KEY = "session_ended"
# "Last used" is rewritten at most this often: each rewrite saves the whole session, and
# a session saved on every request would cost a write per page. An idle limit is thus
# met up to this much early, never late.
SEEN_GRANULARITY_SECONDS = 60
# The longest page address kept for a way back: sealed, it must fit OneTimeLink.target
# (500 characters). A longer one keeps its path without the query.
MAX_RETURN_PATH = 300

# Pages that are no way back: the way in and out, and these pages themselves.
_NOT_A_RETURN = frozenset(
    {
        "accounts:login",
        "accounts:logout",
        "accounts:session_ended",
        "accounts:sign_out_everywhere",
        "accounts:recover",
        "accounts:recover_follow",
        "accounts:step_up",
    }
)


class Reason(enum.StrEnum):
    IDLE = "idle"
    ABSOLUTE = "absolute"
    SIGNED_OUT_EVERYWHERE = "signed_out_everywhere"


@dataclass(frozen=True)
class Limits:
    absolute_seconds: int
    idle_seconds: int


def limits_for(*, is_staff: bool) -> Limits:
    """Staff sessions are shorter: they reach the back-office and other people's data."""
    if is_staff:
        return Limits(settings.STAFF_SESSION_ABSOLUTE_SECONDS, settings.STAFF_SESSION_IDLE_SECONDS)
    return Limits(settings.SESSION_ABSOLUTE_SECONDS, settings.SESSION_IDLE_SECONDS)


# --- The clock --------------------------------------------------------------------------


def start_clock(request: HttpRequest, user: Any, *, started: float | None = None) -> dict[str, Any]:
    now = time.time()
    clock = {"user": user.pk, "started": now if started is None else started, "seen": now}
    request.session[CLOCK_KEY] = clock
    request.session.pop(ENDED_KEY, None)
    return clock


@receiver(user_logged_in, dispatch_uid="accounts_sessions_start_clock")
def _start_clock_at_sign_in(sender: Any, request: HttpRequest | None, user: Any, **kw: Any) -> None:
    """Every sign-in (the password, a recovery link) starts the session's clock afresh.
    ``login()`` has just given the session a new key."""
    if request is not None and hasattr(request, "session"):
        start_clock(request, user)


def _clock_of(session: Any, user: Any) -> dict[str, Any] | None:
    clock = session.get(CLOCK_KEY)
    if (
        isinstance(clock, dict)
        and clock.get("user") == user.pk
        and isinstance(clock.get("started"), int | float)
        and isinstance(clock.get("seen"), int | float)
    ):
        return clock
    return None


def _first_sight(user: Any, now: float) -> float:
    """When a signed-in session without a clock (one from before the clock existed)
    is taken to have begun: the account's last sign-in, which it cannot postdate (so it
    gets no fresh lifetime), or now if that is unknown or in the future."""
    last_login = getattr(user, "last_login", None)
    return min(now, last_login.timestamp()) if last_login is not None else now


def refusal_reason(user: Any, clock: dict[str, Any], now: float) -> Reason | None:
    """Why this session may not go on, or None. A clock that went backwards (the
    session seems to begin in the future) is not a reason: the next request is."""
    valid_after = getattr(user, "sessions_valid_after", None)
    if valid_after is not None and clock["started"] < valid_after.timestamp():
        return Reason.SIGNED_OUT_EVERYWHERE
    limits = limits_for(is_staff=bool(getattr(user, "is_staff", False)))
    if now - clock["started"] >= limits.absolute_seconds:
        return Reason.ABSOLUTE
    if now - clock["seen"] >= limits.idle_seconds:
        return Reason.IDLE
    return None


# --- Where the person was ---------------------------------------------------------------


def seal(path: str) -> str:
    """``path`` encrypted: a page's query may hold personal data (Calendly's redirect
    carries the invitee's email), and sessions and links are stored in clear."""
    return encrypt_str(path).decode() if path else ""


def unseal(sealed: Any) -> str:
    """The sealed path, or "" if it is not one (or its key was retired)."""
    if not isinstance(sealed, str) or not sealed:
        return ""
    try:
        return str(decrypt_str(sealed))
    except (InvalidToken, ValueError, UnicodeError):
        return ""


def local_path(request: HttpRequest, candidate: str | None) -> str | None:
    """``candidate`` as a path (and query) on this site, or None if it is not one:
    another host, a scheme-relative or malformed address, control characters. A full
    URL (a Referer) keeps its path and query."""
    if not candidate or not candidate.isascii() or not candidate.isprintable():
        return None
    try:
        parts = urlsplit(candidate)
    except ValueError:  # a malformed host ("http://[x/")
        return None
    hosts, https = {request.get_host()}, request.is_secure()
    # Origin and path are checked apart: Django refuses a whole URL over 2,048
    # characters, and a long query only costs the query here (below).
    if (parts.scheme or parts.netloc) and not url_has_allowed_host_and_scheme(
        urlunsplit((parts.scheme, parts.netloc, "/", "", "")), hosts, require_https=https
    ):
        return None
    if (
        not parts.path.startswith("/")
        or parts.path.startswith("//")
        or "\\" in parts.path
        or not url_has_allowed_host_and_scheme(parts.path, hosts, require_https=https)
    ):
        return None
    path = urlunsplit(("", "", parts.path, parts.query, ""))
    if len(path) > MAX_RETURN_PATH:
        path = parts.path
    return path if len(path) <= MAX_RETURN_PATH else None


def recoverable(path: str) -> bool:
    """Whether a recovery link may lead to ``path`` (a local path already): never the
    back-office, never the way in or out, only a page that exists."""
    page = urlsplit(path).path
    if not page.startswith("/") or page.startswith(reverse("admin:index")):
        return False
    try:
        match = resolve(page)
    except Resolver404:
        return False
    return match.view_name not in _NOT_A_RETURN


def page_of(path: str) -> str:
    """What an audit entry may say of a page: its path without the query, shortened."""
    return urlsplit(path).path[:200]


@dataclass(frozen=True)
class Ended:
    """What the anonymous session remembers of the one that ended."""

    user_id: int
    reason: Reason
    path: str  # a local path, or ""


def ended_in(session: Any) -> Ended | None:
    stored = session.get(ENDED_KEY)
    if not isinstance(stored, dict) or not isinstance(stored.get("user"), int):
        return None
    try:
        reason = Reason(str(stored.get("reason")))
    except ValueError:
        return None
    return Ended(user_id=stored["user"], reason=reason, path=unseal(stored.get("path")))


# --- The middleware ---------------------------------------------------------------------


def _return_path(request: HttpRequest) -> str | None:
    """The page to come back to: this one for a GET; for a form's POST the page the
    form was on (what was typed cannot survive the detour, the page can)."""
    if request.method in ("GET", "HEAD"):
        return local_path(request, request.get_full_path())
    return local_path(request, request.headers.get("Referer"))


def end_session(request: HttpRequest, *, user: User, reason: Reason) -> None:
    """Refuse this request's session: counted (and audited up to the hourly cap: every
    session ends, so these come in floods), flushed, the request made anonymous, and the
    new session told who it was and where."""
    path = _return_path(request) or ""
    record_capped(
        "accounts.session.expired",
        category=audit.Category.SECURITY,
        actor=user,
        data={"reason": str(reason), "is_staff": user.is_staff, "page": page_of(path)},
    )
    # flush(), not logout(): no "signed out" entry for each of these, the cap above
    # stands for them.
    request.session.flush()
    request.user = AnonymousUser()
    request.session[ENDED_KEY] = {"user": user.pk, "reason": str(reason), "path": seal(path)}


def _sign_in_paths() -> set[str]:
    return {resolve_url(settings.LOGIN_URL), reverse("admin:login")}


def _is_sign_in_redirect(response: HttpResponse) -> bool:
    if response.status_code not in (301, 302, 303, 307, 308) or not response.has_header("Location"):
        return False
    return urlsplit(response["Location"]).path in _sign_in_paths()


class SessionLimitsMiddleware:
    """Enforce the session limits (module docstring). After AuthenticationMiddleware,
    before anything that reads ``request.user``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        ended = self._enforce(request)
        response = self.get_response(request)
        if ended and _is_sign_in_redirect(response):
            # The page needs a sign-in: say why it is asked for, and offer the way back.
            replaced = HttpResponseRedirect(reverse("accounts:session_ended"), status=303)
            replaced.cookies = response.cookies
            return replaced
        return response

    def _enforce(self, request: HttpRequest) -> bool:
        """True if this request's session was just ended."""
        session = getattr(request, "session", None)
        if session is None or SESSION_KEY not in session:
            return False  # nobody signed in: nothing to time (and no user to load)
        user = request.user
        if not user.is_authenticated:
            return False  # auth already refused it (the password changed)
        now = time.time()
        clock = _clock_of(session, user) or start_clock(
            request, user, started=_first_sight(user, now)
        )
        reason = refusal_reason(user, clock, now)
        if reason is not None:
            end_session(request, user=user, reason=reason)
            return True
        if abs(now - clock["seen"]) >= SEEN_GRANULARITY_SECONDS:
            session[CLOCK_KEY] = {**clock, "seen": now}
        return False


# --- Sign out everywhere ----------------------------------------------------------------


@transaction.atomic
def user_sign_out_everywhere(*, user: User, actor: User | str) -> int:
    """End every session of ``user`` that began before now, on every device, every
    recovery link not yet used and every API token (their own audit entry counts
    them); how many tokens. The current request's session is the caller's to end
    (the view signs it out too)."""
    now = timezone.now()
    User.objects.filter(pk=user.pk).update(sessions_valid_after=now)
    user.sessions_valid_after = now
    links.revoke(user=user, purpose=OneTimeLink.Purpose.RECOVER_SESSION)
    revoked = tokens.api_tokens_revoke_all(user=user, actor=actor, reason="signed_out_everywhere")
    audit.record(
        "accounts.session.signed_out_everywhere",
        category=audit.Category.SECURITY,
        actor=actor,
        target=user,
    )
    return revoked


@never_cache
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def sign_out_everywhere(request: HttpRequest) -> HttpResponse:
    """The GET explains and asks; the POST ends every session, this one included.

    This one too: keeping it alive would mean restarting its clock, and pressing the
    button every day would then keep one session alive forever. Signing in again here
    takes a moment."""
    user: User = request.user  # type: ignore[assignment]  # login_required
    if request.method != "POST":
        return render(request, "accounts/session_sign_out_everywhere.html")
    revoked = user_sign_out_everywhere(user=user, actor=user)
    logout(request)
    messages.success(
        request,
        "You are signed out on every device, this one included"
        + (f", and your {revoked} API token(s) revoked" if revoked else "")
        + ". Sign in again here.",
    )
    return HttpResponseRedirect(resolve_url(settings.LOGIN_URL), status=303)
