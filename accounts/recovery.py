"""Getting back to the page you were on when your session ended.

The "session ended" page (where SessionLimitsMiddleware sends a page that needed a
sign-in) says why it ended and offers a link back by email. The link is for the
account the session was signed in to and the page it was on, both remembered by the
anonymous session that replaced it; nobody types an address, so the page can be asked
for nobody else's account.

The request only enqueues (through the outbox) the account's id and the sealed page,
whoever the account is: the worker decides, and issues the link there, so its secret
exists only in the email and the answer takes the same time for every account. Staff
get no link (they sign in with their password, and a code at step-up), nor do inactive
accounts or addresses never verified. A link works once, for
SESSION_RECOVERY_MAX_AGE_MINUTES; following it shows a button (a mail scanner's GET
spends nothing), and the button signs the account in and returns to the page.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import urlencode

from celery import shared_task
from django.conf import settings
from django.contrib.auth import login
from django.core.mail import send_mail
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe

import audit
from accounts import links, sessions
from accounts.models import OneTimeLink, User
from audit.services import record_capped
from core import outbox
from core.timezones import viewer_zone

logger = logging.getLogger(__name__)

TASK = "accounts.recovery.send_recovery_link"
PURPOSE = OneTimeLink.Purpose.RECOVER_SESSION
BACKEND = "accounts.backends.EmailBackend"


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = max(1, seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def why(reason: sessions.Reason, *, is_staff: bool) -> str:
    limits = sessions.limits_for(is_staff=is_staff)
    if reason == sessions.Reason.IDLE:
        return (
            f"You were signed out after {_duration(limits.idle_seconds)} without activity, "
            "to protect your account on a computer left unattended."
        )
    if reason == sessions.Reason.ABSOLUTE:
        return (
            f"You had been signed in for {_duration(limits.absolute_seconds)}, the longest "
            "a session lasts: sign in again to go on."
        )
    return (
        "Your account was signed out on every device (with “Sign out everywhere”, "
        "or when its password was reset)."
    )


def _account_is_staff(user_id: int) -> bool | None:
    """Whether the account is staff; None if it no longer exists."""
    return User.objects.filter(pk=user_id).values_list("is_staff", flat=True).first()


def _sign_in_url(*, is_staff: bool, path: str) -> str:
    url = reverse("admin:login") if is_staff else resolve_url(settings.LOGIN_URL)
    return f"{url}?{urlencode({'next': path})}" if path else url


def _site_url(name: str, *args: str) -> str:
    return f"{settings.SITE_URL}{reverse(name, args=args)}"


@never_cache
@require_safe
def session_ended(request: HttpRequest) -> HttpResponse:
    """Why the session ended, a way to sign in again (back to the same page) and, for
    a client, the offer of a link back by email."""
    if request.user.is_authenticated:
        return HttpResponseRedirect(resolve_url(settings.LOGIN_REDIRECT_URL))
    ended = sessions.ended_in(request.session)
    is_staff = _account_is_staff(ended.user_id) if ended is not None else None
    if ended is None or is_staff is None:
        return render(
            request,
            "accounts/session_ended.html",
            {"ended": False, "sign_in_url": resolve_url(settings.LOGIN_URL)},
        )
    return render(
        request,
        "accounts/session_ended.html",
        {
            "ended": True,
            "why": why(ended.reason, is_staff=is_staff),
            "is_staff": is_staff,
            "sign_in_url": _sign_in_url(is_staff=is_staff, path=ended.path),
            "minutes": settings.SESSION_RECOVERY_MAX_AGE_MINUTES,
        },
    )


@never_cache
@require_POST
def recover(request: HttpRequest) -> HttpResponse:
    """Ask for the link back, for the account whose session ended in this browser.

    Every account costs the same here: one look-up, one capped audit count, one
    enqueued task (the worker sends nothing to staff, inactive or unverified accounts).
    Rate limits are the URL-name middleware's (``accounts:recover``)."""
    ended = sessions.ended_in(request.session)
    is_staff = _account_is_staff(ended.user_id) if ended is not None else None
    if ended is None or is_staff is None:
        return HttpResponseRedirect(reverse("accounts:session_ended"), status=303)
    outbox.enqueue(TASK, ended.user_id, sessions.seal(ended.path))
    record_capped(
        "accounts.session.recovery_requested",
        category=audit.Category.SECURITY,
        actor=None,  # whoever holds the browser: the account is only who it was
        data={"user": ended.user_id, "is_staff": is_staff},
    )
    return render(
        request,
        "accounts/recovery_sent.html",
        {
            "is_staff": is_staff,
            "minutes": settings.SESSION_RECOVERY_MAX_AGE_MINUTES,
            "sign_in_url": _sign_in_url(is_staff=is_staff, path=ended.path),
        },
    )


def may_recover(user: User | None) -> str:
    """Why ``user`` gets no link (or cannot use one), or "" if they may."""
    if user is None or not user.is_active:
        return "inactive"
    if user.is_staff:
        return "staff"
    if user.email_verified_at is None:
        # A link signs in whoever reads the mailbox: only one proven to be theirs.
        return "unverified"
    return ""


@shared_task(
    name=TASK,
    ignore_result=True,
    autoretry_for=(OSError,),
    retry_backoff=30,
    max_retries=8,
)
def send_recovery_link(user_pk: int, sealed_path: str) -> bool:
    """Issue the link and email it to the account's address; False when the account
    gets none. A retried task issues a new link, which replaces the unsent one. Never
    logs the address, the page or the link."""
    user = User.objects.filter(pk=user_pk).first()
    refused = may_recover(user)
    if refused or user is None:
        logger.info("accounts.session.recovery_not_sent", extra={"reason": refused})
        return False
    path = sessions.unseal(sealed_path)
    if not path.startswith("/") or path.startswith("//") or not sessions.recoverable(path):
        path = ""
    max_age = timedelta(minutes=settings.SESSION_RECOVERY_MAX_AGE_MINUTES)
    secret = links.issue(
        PURPOSE, max_age=max_age, user=user, email=user.email, target=sessions.seal(path)
    )
    zone = viewer_zone(user)
    until = timezone.localtime(timezone.now() + max_age, zone)
    text = render_to_string(
        "emails/session_recovery.txt",
        {
            "site_url": settings.SITE_URL,
            "url": _site_url("accounts:recover_follow", secret),
            "minutes": settings.SESSION_RECOVERY_MAX_AGE_MINUTES,
            "until": f"{until:%H:%M} {zone}",
            "sign_out_everywhere_url": _site_url("accounts:sign_out_everywhere"),
        },
    )
    subject, _, body = text.partition("\n")
    send_mail(subject.strip(), body.lstrip("\n"), None, [user.email])
    logger.info("accounts.email_sent", extra={"kind": "session_recovery"})
    return True


def _usable(link: OneTimeLink | None) -> bool:
    if link is None or may_recover(link.user):
        return False
    # Issued before a "sign out everywhere" or a password reset: that ended it too.
    valid_after = link.user.sessions_valid_after  # type: ignore[union-attr]
    return valid_after is None or link.created_at >= valid_after


def _dead_link(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "accounts/recovery_invalid.html",
        {"sign_in_url": resolve_url(settings.LOGIN_URL)},
        status=410,
    )


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def recover_follow(request: HttpRequest, secret: str) -> HttpResponse:
    """The link's target. The GET spends nothing (mail scanners open links); the POST
    spends the link, signs its account in and returns to its page."""
    if request.method != "POST":
        if not _usable(links.peek(secret, PURPOSE)):
            return _dead_link(request)
        return render(request, "accounts/recovery_follow.html", {})
    link = links.spend(secret, PURPOSE)
    if not _usable(link) or link is None or link.user is None:
        return _dead_link(request)
    user = link.user
    path = sessions.local_path(request, sessions.unseal(link.target)) or ""
    if not path or not sessions.recoverable(path):
        path = resolve_url(settings.LOGIN_REDIRECT_URL)
    login(request, user, backend=BACKEND)
    audit.record(
        "accounts.session.recovered",
        category=audit.Category.SECURITY,
        actor=user,
        target=user,
        data={"link": link.pk, "page": sessions.page_of(path)},
    )
    return HttpResponseRedirect(path, status=303)
