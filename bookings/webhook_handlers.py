"""Calendly's events: each re-reads the invitee from Calendly before acting."""

from __future__ import annotations

import logging

from bookings import calendly, services
from bookings.models import Booking, IllegalTransition
from core import outbox
from payments.services import NotReady
from webhooks.registry import IGNORED, Event, RetryLater, handles

logger = logging.getLogger(__name__)


def _invitee_uri(event: Event) -> str:
    """Every one of these payloads is the invitee (a no-show's adds ``no_show``)."""
    return event.data["payload"]["uri"]


@handles("calendly", "invitee.created")
def invitee_created(event: Event) -> str | None:
    invitee, scheduled = services.fetch_invitee(_invitee_uri(event))
    try:
        booking = services.record_invitee(invitee, scheduled, source="webhook")
    except NotReady as exc:
        raise RetryLater(str(exc)) from None
    if booking is None:
        return IGNORED
    if booking.status == Booking.Status.PENDING_PAYMENT and booking.client_id is not None:
        # The client may have left before Checkout: Checkout is opened and the link
        # emailed by a task after this commits (no lock is held while Stripe answers),
        # through the outbox, so a broker outage delays it and never drops it.
        outbox.enqueue(
            "payments.tasks.start_checkout",
            booking.pk,
            dedup_key=f"start_checkout:{booking.reference}",
        )
    return None


@handles("calendly", "invitee.canceled")
def invitee_canceled(event: Event) -> str | None:
    invitee, _ = services.fetch_invitee(_invitee_uri(event))
    try:
        booking = services.invitee_canceled(invitee)
    except NotReady as exc:
        if not services.event_type_known(invitee):
            return IGNORED
        raise RetryLater(str(exc)) from None
    return None if booking is not None else IGNORED


@handles("calendly", "invitee_no_show.created")
def invitee_no_show(event: Event) -> str | None:
    with calendly.CalendlyClient() as client:
        invitee = client.get_invitee_by_uri(_invitee_uri(event))
    booking = Booking.objects.for_invitee(invitee.uri).first()
    if booking is None:
        if not services.event_type_known(invitee):
            return IGNORED
        raise RetryLater("the booking is not recorded yet")
    if invitee.no_show is None:
        return IGNORED  # marked and unmarked since: nothing to do
    try:
        booking.mark_no_show(actor=services.ACTOR)
    except IllegalTransition:
        if booking.status == Booking.Status.PENDING_PAYMENT:
            raise RetryLater("the booking is not confirmed yet") from None
        return IGNORED
    return None
