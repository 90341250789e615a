"""Emails to clients and staff, sent after the transaction that caused them commits.

A mail server that is down loses an email, never a booking or a payment: the failure
is logged (without the address) and the page or handler carries on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string

from bookings.models import Booking
from bookings.money import format_money
from core.timezones import viewer_zone

logger = logging.getLogger(__name__)


def _send(kind: str, template: str, recipients: Iterable[str], context: dict[str, Any]) -> None:
    to = [address for address in recipients if address]
    if not to:
        return
    text = render_to_string(f"emails/{template}.txt", {"site_url": settings.SITE_URL, **context})
    subject, _, body = text.partition("\n")

    def send() -> None:
        try:
            send_mail(subject.strip(), body.lstrip("\n"), None, to)
        except Exception:
            logger.exception("notify.failed", extra={"kind": kind})
        else:
            logger.info("notify.sent", extra={"kind": kind, "recipients": len(to)})

    transaction.on_commit(send)


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
