"""What Calendly's and Stripe's events do: each re-reads its object from the provider
before acting.

Bookings orchestrates both providers' events: a Calendly invitee is a booking, and a
Stripe outcome (paid, failed, expired, refunded, disputed) moves a booking too.
``payments`` applies what happened to the payment; the booking's move is decided here
and in ``services`` and ``checkout``.
"""

from __future__ import annotations

import logging

from bookings import calendly, checkout, claims, services
from bookings.models import Booking, IllegalTransition
from core import outbox
from payments import stripe_gateway
from payments.models import Payment
from payments.services import (
    NotReady,
    payment_for_charge,
    payment_mark_failed,
    payment_sync_refunds,
)
from webhooks.registry import IGNORED, Event, RetryLater, handles

logger = logging.getLogger(__name__)

# The audit trail's name for Stripe's handlers, as it was when they lived in payments.
STRIPE_ACTOR = "payments.webhooks"


# --- Calendly ------------------------------------------------------------------------------


def _invitee_uri(event: Event) -> str:
    """Every one of these payloads is the invitee (a no-show's adds ``no_show``)."""
    return event.data["payload"]["uri"]


@handles("calendly", "invitee.created")
def invitee_created(event: Event) -> str | None:
    invitee, scheduled = services.fetch_invitee(_invitee_uri(event))
    try:
        booking = services.booking_record_invitee(
            invitee=invitee, event=scheduled, source="webhook"
        )
    except NotReady as exc:
        raise RetryLater(str(exc)) from None
    if booking is None:
        return IGNORED
    if booking.status == Booking.Status.PENDING_PAYMENT and booking.client_id is not None:
        # The client may have left before Checkout: Checkout is opened and the link
        # emailed by a task after this commits (no lock is held while Stripe answers),
        # through the outbox, so a broker outage delays it and never drops it.
        outbox.enqueue(
            "bookings.tasks.start_checkout",
            booking.pk,
            dedup_key=f"start_checkout:{booking.reference}",
        )
    elif booking.status == Booking.Status.PENDING_PAYMENT:
        # Booked straight on Calendly: the invitee is emailed a link to claim it (once).
        claims.claim_offer(booking=booking)
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


# --- Stripe --------------------------------------------------------------------------------


@handles(
    "stripe",
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
)
def checkout_session(event: Event) -> str | None:
    # The session, its PaymentIntent and the latest charge in one request: what
    # settling it reads (checkout._settle_paid), as Stripe reports them now.
    session = stripe_gateway.retrieve_checkout_session(event.object_id or "", with_payment=True)
    payment = checkout.payment_for_session(session)
    if payment is None:
        return IGNORED
    failed = False
    if event.event_type.endswith("async_payment_failed") and session.payment_intent_id:
        intent = session.payment_intent or stripe_gateway.retrieve_payment_intent(
            session.payment_intent_id
        )
        failed = intent.status in ("requires_payment_method", "canceled")
    # Only a session that failed or expired can end its booking (a paid one is
    # settled with the booking locked, in checkout_settle).
    booking, ends = None, False
    if failed or session.status == "expired":
        booking = Booking.objects.get(pk=payment.booking_id)
        others_open = booking.payments.filter(status=Payment.Status.OPEN).exclude(pk=payment.pk)
        ends = booking.status == Booking.Status.PENDING_PAYMENT and not others_open.exists()
    if ends and booking is not None:
        services.cancel_calendly_event(booking, reason="Not paid")  # the provider first
    checkout.checkout_settle(payment=payment, session=session)
    if failed:
        payment_mark_failed(payment=payment, actor=checkout.ACTOR)
    if ends and booking is not None:
        reason = "payment failed" if failed else "payment expired"
        services.booking_release_unpaid(booking=booking, reason=reason, cancel_event=False)
    return None


def _charge_payment(charge: stripe_gateway.Charge) -> Payment | None:
    payment = payment_for_charge(charge.id, charge.payment_intent_id)
    if payment is None and services.intent_names_our_booking(charge.payment_intent_id):
        raise RetryLater("the payment for this charge is not recorded as paid yet")
    if payment is not None and payment.status == Payment.Status.OPEN:
        raise RetryLater("the payment for this charge is not recorded as paid yet")
    return payment


@handles("stripe", "charge.refunded", "charge.refund.updated")
def refunds_changed(event: Event) -> str | None:
    obj = event.data["data"]["object"]
    charge_id = obj["id"] if obj.get("object") == "charge" else obj.get("charge")
    if not charge_id:
        return IGNORED
    charge = stripe_gateway.retrieve_charge(charge_id)
    payment = _charge_payment(charge)
    if payment is None:
        return IGNORED
    try:
        payment_sync_refunds(payment=payment, charge=charge, actor=STRIPE_ACTOR)
    except NotReady as exc:
        raise RetryLater(str(exc)) from None
    return None


@handles(
    "stripe",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
)
def dispute_changed(event: Event) -> str | None:
    """Every step of a dispute the same way: the dispute as Stripe reports it now is
    applied forward only, so a late, repeated or out-of-order delivery (closed before
    updated) ends where Stripe is, and changes nothing when we are there already."""
    dispute = stripe_gateway.retrieve_dispute(event.object_id or "")
    try:
        booking = services.booking_dispute(dispute=dispute, actor=STRIPE_ACTOR)
    except NotReady as exc:
        raise RetryLater(str(exc)) from None
    return None if booking is not None else IGNORED
