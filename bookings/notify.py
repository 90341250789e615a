"""The client's emails about a booking: the payment link, the confirmation, the
cancellation. Sent through ``core.notify`` (after the commit, through the outbox);
staff alerts are ``core.notify.staff_alert``.
"""

from __future__ import annotations

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
    booking: Booking, refund_amount: int, currency: str, *, reviewed: bool = False
) -> None:
    """``reviewed``: the refund waits for a second staff member's approval, so the
    email promises no amount on its way yet."""
    send(
        "canceled",
        "canceled",
        [booking.invitee_email or ""],
        {
            **_booking_context(booking),
            "refund": format_money(refund_amount, currency),
            "refund_due": refund_amount > 0,
            "refund_reviewed": reviewed,
        },
    )
