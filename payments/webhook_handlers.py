"""Stripe's events: each re-reads the object from Stripe before acting."""

from __future__ import annotations

from bookings import services as bookings
from bookings.models import Booking
from payments import checkout, stripe_gateway
from payments.models import Payment
from payments.services import NotReady, payment_for_charge, record_dispute, sync_refunds
from webhooks.registry import IGNORED, Event, RetryLater, handles

ACTOR = "payments.webhooks"


@handles(
    "stripe",
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
)
def checkout_session(event: Event) -> str | None:
    session = stripe_gateway.retrieve_checkout_session(event.object_id or "")
    payment = checkout.payment_for_session(session)
    if payment is None:
        return IGNORED
    booking = Booking.objects.get(pk=payment.booking_id)
    failed = False
    if event.event_type.endswith("async_payment_failed") and session.payment_intent_id:
        intent = stripe_gateway.retrieve_payment_intent(session.payment_intent_id)
        failed = intent.status in ("requires_payment_method", "canceled")
    others_open = booking.payments.filter(status=Payment.Status.OPEN).exclude(pk=payment.pk)
    ends = (
        (failed or session.status == "expired")
        and booking.status == Booking.Status.PENDING_PAYMENT
        and not others_open.exists()
    )
    if ends:
        bookings.cancel_calendly_event(booking, reason="Not paid")  # the provider first
    checkout.settle(payment, session)
    if failed:
        checkout.mark_failed(payment)
    if ends:
        reason = "payment failed" if failed else "payment expired"
        bookings.release_unpaid(booking, reason=reason, cancel_event=False)
    return None


def _charge_payment(charge: stripe_gateway.Charge) -> Payment | None:
    payment = payment_for_charge(charge.id, charge.payment_intent_id)
    if payment is None and charge.payment_intent_id:
        intent = stripe_gateway.retrieve_payment_intent(charge.payment_intent_id)
        if Booking.objects.filter(reference=intent.metadata.get("booking") or None).exists():
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
        sync_refunds(payment, charge=charge, actor=ACTOR)
    except NotReady as exc:
        raise RetryLater(str(exc)) from None
    return None


@handles("stripe", "charge.dispute.created")
def dispute_created(event: Event) -> str | None:
    dispute = stripe_gateway.retrieve_dispute(event.object_id or "")
    try:
        payment = record_dispute(dispute, actor=ACTOR)
    except NotReady as exc:
        raise RetryLater(str(exc)) from None
    return None if payment is not None else IGNORED
