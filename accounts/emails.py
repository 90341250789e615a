"""The emails about an account: verification, password reset, notices, invitations.

Each is sent by one task, :func:`deliver`, enqueued through the outbox after the commit
(core/outbox.py). The task's arguments name the recipient by account id, or carry the
address encrypted (an invitation, a notice to a former address): the broker and the
logs never see an address in clear. A link is issued by the task itself, in the
worker, so its secret exists only in the email; a retried task issues a new one
(which replaces the unsent one).

A password reset is asked for by address: the view enqueues the address's blind
indexes and nothing else, whatever the address, so that known and unknown addresses
cost the request the same; the worker finds the account, or sends nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from encrypted_model_fields.fields import decrypt_str, encrypt_str

import audit
from accounts import links
from accounts.models import Builder, BuilderMembership, OneTimeLink, User
from audit.services import record_capped
from core import outbox
from core.encryption import blind_indexes

logger = logging.getLogger(__name__)

TASK = "accounts.emails.deliver"
Purpose = OneTimeLink.Purpose

INVITATION_MAX_AGE = timedelta(days=7)


def _url(name: str, *args: Any) -> str:
    return f"{settings.SITE_URL}{reverse(name, args=args)}"


def send(kind: str, *, user: User | None = None, address: str = "", **context: Any) -> None:
    """Send the email ``kind`` after the commit: to ``user`` (at their address when the
    task runs), or to ``address``. ``context`` must be JSON and hold no personal data
    (it travels through the broker)."""
    if kind not in KINDS:
        raise ValueError(f"unknown account email {kind!r}")
    sealed = encrypt_str(address).decode() if address else ""
    outbox.enqueue(TASK, kind, user.pk if user is not None else None, sealed, context)


def _verify_email(user: User | None, address: str, context: dict[str, Any]) -> Any:
    if user is None or not user.is_active or user.email_verified_at is not None:
        return None
    secret = links.issue(
        Purpose.VERIFY_EMAIL,
        max_age=timedelta(hours=settings.EMAIL_VERIFICATION_MAX_AGE_HOURS),
        user=user,
        email=user.email,
    )
    return user.email, {
        "url": _url("accounts:verify", secret),
        "hours": settings.EMAIL_VERIFICATION_MAX_AGE_HOURS,
    }


def _password_reset(user: User | None, address: str, context: dict[str, Any]) -> Any:
    """Looked up here, by the indexes the request enqueued: an unknown or inactive
    address gets nothing (and the request's answer did not depend on it)."""
    indexes = [str(index) for index in context.get("indexes", [])][:8]
    found = User.objects.filter(email_index__in=indexes, is_active=True).first()
    if found is None:
        logger.info("accounts.password_reset.no_account")
        return None
    secret = links.issue(
        Purpose.RESET_PASSWORD,
        max_age=timedelta(minutes=settings.PASSWORD_RESET_MAX_AGE_MINUTES),
        user=found,
        email=found.email,
    )
    # Capped: anyone may ask for a known address's reset as often as the limits allow.
    record_capped(
        "accounts.password_reset.sent",
        category=audit.Category.SECURITY,
        actor="accounts",
        data={"user": found.pk, "is_staff": found.is_staff},
    )
    return found.email, {
        "url": _url("accounts:password_reset_confirm", secret),
        "minutes": settings.PASSWORD_RESET_MAX_AGE_MINUTES,
    }


def _notice(user: User | None, address: str, context: dict[str, Any]) -> Any:
    """A notice to the account's owner (password changed, someone signed up with
    their address) or to a former address (the email was changed)."""
    to = address or (user.email if user is not None and user.is_active else "")
    if not to:
        return None
    return to, {
        "login_url": _url("accounts:login"),
        "reset_url": _url("accounts:password_reset"),
        "account_url": _url("accounts:account"),
    }


def _invite_member(user: User | None, address: str, context: dict[str, Any]) -> Any:
    builder = Builder.objects.filter(pk=int(context.get("builder") or 0), is_active=True).first()
    role = context.get("role")
    if builder is None or not address or role not in BuilderMembership.Role.values:
        return None
    target = invitation_target(builder, role)
    # Only the newest invitation of this address to this builder works (links.issue
    # would replace the address's invitations to every builder).
    OneTimeLink.objects.filter(
        purpose=Purpose.INVITE_BUILDER_MEMBER,
        email_index__in=blind_indexes(address),
        target=target,
        used_at__isnull=True,
    ).update(expires_at=timezone.now())
    secret = links.issue(
        Purpose.INVITE_BUILDER_MEMBER,
        max_age=INVITATION_MAX_AGE,
        email=address,
        target=target,
        replace=False,
    )
    return address, {
        "url": _url("accounts:invitation", secret),
        "builder": builder.name,
        "role": BuilderMembership.Role(role).label.lower(),
        "days": INVITATION_MAX_AGE.days,
    }


def invitation_target(builder: Builder, role: str) -> str:
    return f"builder={builder.pk};role={role}"


def parse_invitation_target(target: str) -> tuple[int, str] | None:
    parts = dict(part.split("=", 1) for part in target.split(";") if "=" in part)
    builder, role = parts.get("builder", ""), parts.get("role", "")
    if not builder.isdigit() or role not in BuilderMembership.Role.values:
        return None
    return int(builder), role


EmailBuilder = Callable[[User | None, str, dict[str, Any]], Any]

# kind -> what finds the recipient and the template's context (None: send nothing).
KINDS: dict[str, EmailBuilder] = {
    "verify_email": _verify_email,
    "password_reset": _password_reset,
    "password_changed": _notice,
    "signup_attempt": _notice,
    "email_changed": _notice,
    "invite_member": _invite_member,
}


@shared_task(
    name=TASK,
    ignore_result=True,
    autoretry_for=(OSError,),
    retry_backoff=30,
    max_retries=8,
)
def deliver(kind: str, user_pk: int | None, sealed_address: str, context: dict[str, Any]) -> bool:
    """One account email; False when there is nobody to send it to. Never logs the
    address or the text."""
    user = User.objects.filter(pk=user_pk).first() if user_pk is not None else None
    address = decrypt_str(sealed_address) if sealed_address else ""
    found = KINDS[kind](user, address, context)
    if found is None:
        return False
    to, extra = found
    text = render_to_string(
        f"emails/{kind}.txt", {"site_url": settings.SITE_URL, **context, **extra}
    )
    subject, _, body = text.partition("\n")
    send_mail(subject.strip(), body.lstrip("\n"), None, [to])
    logger.info("accounts.email_sent", extra={"kind": kind})
    return True
