"""Emails to clients and staff, sent after the transaction that caused them commits.

Each goes through the outbox (core/outbox.py): a mail server or broker that is down
delays an email, retried with backoff, and never a booking or a payment; failures are
logged without the address.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.template.loader import render_to_string

from bookings.models import Booking
from bookings.money import format_money
from core import outbox
from core.timezones import viewer_zone

logger = logging.getLogger(__name__)


def _send(kind: str, template: str, recipients: Iterable[str], context: dict[str, Any]) -> None:
    """Render now, send after the commit through the outbox: a mail server (or a
    broker) that is down delays an email and never loses it, and never undoes the
    change that caused it."""
    to = [address for address in recipients if address]
    if not to:
        return
    text = render_to_string(f"emails/{template}.txt", {"site_url": settings.SITE_URL, **context})
    subject, _, body = text.partition("\n")
    outbox.enqueue("core.tasks.send_mail", kind, subject.strip(), body.lstrip("\n"), to)


def _booking_context(booking: Booking) -> dict[str, Any]:
    """What the client's emails say of a booking. The start is shown in the client's
    zone (``|timezone:zone``, named by ``time_zone``): their own setting, else the one
    they picked on Calendly; never the zone of whatever sends the email."""
    zone = viewer_zone(booking.client, booking=booking)
    return {
        "booking": booking,
        "title": booking.event_type.title,
        "builder": booking.builder.name,
        "start": booking.start_at,
        "zone": zone,
        "time_zone": zone.key,
        "price": format_money(booking.price_amount, booking.currency),
    }


def payment_link(booking: Booking, url: str) -> None:
    _send(
        "payment_link",
        "payment_link",
        [booking.invitee_email or ""],
        {**_booking_context(booking), "url": url},
    )


def confirmed(booking: Booking, receipt_url: str) -> None:
    _send(
        "confirmed",
        "confirmed",
        [booking.invitee_email or ""],
        {**_booking_context(booking), "receipt_url": receipt_url},
    )


def canceled(booking: Booking, refund_amount: int, currency: str) -> None:
    _send(
        "canceled",
        "canceled",
        [booking.invitee_email or ""],
        {**_booking_context(booking), "refund": format_money(refund_amount, currency)},
    )


def staff_alert(subject: str, lines: Iterable[str], *, group: str = "Finance") -> None:
    """Tell the staff group (Finance by default) that something needs a person."""
    members = (
        get_user_model()
        .objects.filter(is_active=True, is_staff=True, groups__name=group)
        .distinct()
    )
    recipients = [user.email for user in members] or [email for _, email in settings.ADMINS]
    _send("staff_alert", "staff_alert", recipients, {"subject": subject, "lines": list(lines)})
