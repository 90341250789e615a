"""The client's emails about a booking: the claim link (a booking made straight on
Calendly), the payment link, the confirmation, the cancellation, a no-show. Sent
through ``core.notify`` (after the commit, through the outbox); staff alerts are
``core.notify.staff_alert``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bookings.models import Booking
from core.notify import send
from core.timezones import viewer_zone
from payments.models import Payment
from payments.money import format_money


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
        # Before payment: Stripe adds its tax on top of the price at Checkout.
        "plus_tax": booking.event_type.automatic_tax,
    }


def payment_link(booking: Booking, url: str) -> None:
    send(
        "payment_link",
        "payment_link",
        [booking.invitee_email or ""],
        {**_booking_context(booking), "url": url},
    )


def confirmed(booking: Booking, receipt_url: str, *, payment: Payment | None = None) -> None:
    """``payment``: the one that confirmed it, whose amount is what the client paid (tax
    included, as Stripe charged it); without one the email gives the price."""
    paid = payment.amount if payment is not None else booking.price_amount
    currency = payment.currency if payment is not None else booking.currency
    tax = payment.tax_amount if payment is not None else 0
    send(
        "confirmed",
        "confirmed",
        [booking.invitee_email or ""],
        {
            **_booking_context(booking),
            "paid": format_money(paid, currency),
            "tax": format_money(tax, currency) if tax else "",
            "receipt_url": receipt_url,
        },
    )


def canceled(
    booking: Booking,
    refund_amount: int,
    currency: str,
    *,
    reviewed: bool = False,
    by_builder: bool = False,
) -> None:
    """``reviewed``: the refund waits for a second staff member's approval, so the
    email promises no amount on its way yet. ``by_builder``: the builder called it
    off, and the email says so."""
    send(
        "canceled",
        "canceled",
        [booking.invitee_email or ""],
        {
            **_booking_context(booking),
            "refund": format_money(refund_amount, currency),
            "refund_due": refund_amount > 0,
            "refund_reviewed": reviewed,
            "by_builder": by_builder or booking.cancel_by_builder,
        },
    )


def no_show(booking: Booking) -> None:
    """The builder marked the client absent: said to the client, who may disagree."""
    send("no_show", "no_show", [booking.invitee_email or ""], _booking_context(booking))


def claim_link(booking: Booking, url: str, *, until: datetime, to: str) -> None:
    """A booking made straight on Calendly: the link to claim and pay for it goes to
    ``to`` (the address the invitee gave Calendly, or the client staff chose) and
    nowhere else (never a log)."""
    context = _booking_context(booking)
    send("claim_link", "claim_link", [to], {**context, "url": url, "until": until})
