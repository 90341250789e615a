"""Emails, sent after the transaction that caused them commits, and staff alerts.

Each goes through the outbox (core/outbox.py): a mail server or broker that is down
delays an email, retried with backoff, and never a booking or a payment; failures are
logged without the address. What an app tells its own people (a client's booking
emails) is built on :func:`send` in that app's ``notify.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.template.loader import render_to_string

from core import outbox


def send(kind: str, template: str, recipients: Iterable[str], context: dict[str, Any]) -> None:
    """Render now, send after the commit through the outbox: a mail server (or a
    broker) that is down delays an email and never loses it, and never undoes the
    change that caused it."""
    to = [address for address in recipients if address]
    if not to:
        return
    text = render_to_string(f"emails/{template}.txt", {"site_url": settings.SITE_URL, **context})
    subject, _, body = text.partition("\n")
    outbox.enqueue("core.tasks.send_mail", kind, subject.strip(), body.lstrip("\n"), to)


def staff_alert(subject: str, lines: Iterable[str], *, group: str = "Finance") -> None:
    """Tell the staff group (Finance by default) that something needs a person."""
    members = (
        get_user_model()
        .objects.filter(is_active=True, is_staff=True, groups__name=group)
        .distinct()
    )
    admins = [admin if isinstance(admin, str) else admin[1] for admin in settings.ADMINS]
    recipients = [user.email for user in members] or admins
    send("staff_alert", "staff_alert", recipients, {"subject": subject, "lines": list(lines)})
