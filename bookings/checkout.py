"""From a booking to its payment and back: start Checkout, then settle what Stripe says.

:func:`checkout_start` creates one Checkout Session per booking (Stripe's idempotency
key is built from the booking's reference, and only that reference goes into
metadata). :func:`checkout_settle` applies a session as Stripe reports it *now* (the
handlers re-read it): paid → the payment is ``paid`` and the booking ``confirmed``,
unless the amount is not what the booking expected (flagged for review) or the
booking is already paid or no longer waiting (refunded automatically, once).

The payment's own changes are ``payments.services``; what they mean for the booking
is decided here.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import transaction
from django.urls import reverse

import audit
from bookings import notify
from bookings.models import Booking
from payments import stripe_gateway
from payments.models import Payment
from payments.money import format_money
from payments.services import (
    payment_create_for_session,
    payment_flag,
    payment_mark_paid,
    payment_sync_refunds,
    payment_sync_session,
    reference_for,
    refund_request,
)

# The audit trail's name for this component, as it was when it lived in payments.
ACTOR = "payments.checkout"
ELEVATED_RISK = ("elevated", "highest")


class CheckoutRefused(Exception):  # noqa: N818 (the outcome the page shows)
    """This booking cannot be paid for now; the message says why, for the client."""


def refund_terms(booking: Booking) -> str:
    """The policy in one line, shown on Stripe's page above the pay button."""
    parts = []
    for tier in booking.event_type.policy.tiers:
        if tier.min_notice_hours:
            parts.append(f"{tier.percent}% if canceled {tier.min_notice_hours} h or more ahead")
        else:
            parts.append(f"{tier.percent}% after that")
    return "Refunds: " + "; ".join(parts) + "."


def checkout_start(*, booking: Booking) -> Payment:
    """The payment to send the client to: the open one, or a new Checkout Session.

    Refused (CheckoutRefused) unless the booking awaits payment, belongs to a client
    and carries that client's consent to the refund policy.
    """
    if booking.status != Booking.Status.PENDING_PAYMENT:
        raise CheckoutRefused("This booking is not awaiting payment.")
    if booking.client_id is None:
        raise CheckoutRefused("This booking is waiting for our staff to check it.")
    if not booking.consents.filter(user_id=booking.client_id).exists():
        raise CheckoutRefused("Please agree to the refund policy before paying.")
    current = booking.payments.filter(status=Payment.Status.OPEN).order_by("-created_at").first()
    if current is not None and current.checkout_url:
        return current
    success = settings.SITE_URL + reverse("bookings:paid", args=[booking.reference])
    session = stripe_gateway.create_checkout_session(
        booking_ref=str(booking.reference),
        item_name=f"{booking.event_type.title} ({booking.builder.name})",
        amount=booking.price_amount,
        currency=booking.currency,
        success_url=success + "?session_id={CHECKOUT_SESSION_ID}",
        cancel_url=settings.SITE_URL + reverse("bookings:detail", args=[booking.reference]),
        refund_terms=refund_terms(booking),
        automatic_tax=booking.event_type.automatic_tax,
        customer_email=booking.invitee_email or None,
    )
    with transaction.atomic():
        payment, created = _payment_row(booking, session)
        if created:
            audit.record(
                "payments.checkout.started",
                category=audit.Category.TRANSACTION,
                actor=ACTOR,
                target=payment,
                data={
                    "booking": booking.pk,
                    "amount": payment.amount,
                    "currency": payment.currency,
                    "automatic_tax": booking.event_type.automatic_tax,
                },
            )
            notify.payment_link(booking, payment.checkout_url)
    return payment


def payment_for_session(session: stripe_gateway.CheckoutSession) -> Payment | None:
    """Our payment for a session; adopted from its booking reference when the session
    was created but our row was not (a crash between Stripe's answer and our commit)."""
    payment = Payment.objects.filter(checkout_session_id=session.id).first()
    if payment is not None:
        return payment
    reference = session.metadata.get("booking", "")
    booking = Booking.objects.filter(reference=reference).first() if _is_uuid(reference) else None
    if booking is None:
        return None  # not ours (another integration on the same Stripe account)
    return _payment_row(booking, session)[0]


def _payment_row(booking: Booking, session: stripe_gateway.CheckoutSession) -> tuple[Payment, bool]:
    return payment_create_for_session(
        booking_id=booking.pk,
        session=session,
        amount=booking.price_amount,
        currency=booking.currency,
    )


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def checkout_settle(*, payment: Payment, session: stripe_gateway.CheckoutSession) -> str:
    """Apply a session as Stripe reports it now. Returns what happened, for the log:
    ``paid``, ``flagged_or_refunded``, ``awaiting`` or ``expired``."""
    if session.payment_status in ("paid", "no_payment_required"):
        return _settle_paid(payment, session)
    expired = payment_sync_session(payment=payment, session=session, actor=ACTOR)
    return "expired" if expired else "awaiting"


def _settle_paid(payment: Payment, session: stripe_gateway.CheckoutSession) -> str:
    # The provider first, then our writes (the audit chain's lock is held to commit).
    # A session read with its payment (``with_payment``) brings the intent and the
    # charge along; otherwise each is asked for.
    intent = session.payment_intent
    if intent is None and session.payment_intent_id:
        intent = stripe_gateway.retrieve_payment_intent(session.payment_intent_id)
    charge = intent.latest_charge if intent is not None else None
    if charge is None and intent is not None and intent.latest_charge_id:
        charge = stripe_gateway.retrieve_charge(intent.latest_charge_id)
    with transaction.atomic():
        # Both rows locked before the first audit entry takes the chain's lock.
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        # With what the confirmation email names (its client, event type, builder),
        # read in the same query; only the booking's row is locked.
        booking = (
            Booking.objects.select_related("client", "event_type", "builder")
            .select_for_update(of=("self",))
            .get(pk=payment.booking_id)
        )
        # Decided once, when the payment is first paid: deciding again on a repeat,
        # after a cancellation, would refund what the policy kept.
        first = payment_mark_paid(payment=payment, session=session, charge=charge, actor=ACTOR)
        if first and not _decide(payment, booking, session, charge):
            return "flagged_or_refunded"
    if charge is not None and (charge.amount_refunded or charge.refunds):
        payment_sync_refunds(payment=payment, charge=charge, actor=ACTOR)
    return "paid"


def _decide(
    payment: Payment,
    booking: Booking,
    session: stripe_gateway.CheckoutSession,
    charge: stripe_gateway.Charge | None,
) -> bool:
    """For a payment just become paid: confirm its booking (True), or flag a wrong
    amount, or refund a payment the booking cannot use (False)."""
    expected = booking.price_amount
    paid_net = (session.amount_total or 0) - session.amount_tax
    if (session.currency or "").lower() != booking.currency or paid_net != expected:
        reason = (
            f"paid {format_money(paid_net, session.currency or booking.currency)} before tax, "
            f"booking expects {format_money(expected, booking.currency)}"
        )
        payment_flag(payment=payment, reason=reason, actor=ACTOR)
        return False
    if charge is not None and charge.risk_level in ELEVATED_RISK:
        payment_flag(payment=payment, reason=f"Radar risk level {charge.risk_level}", actor=ACTOR)
    # Paid once is paid, whatever happened since: refunded, or charged back.
    other_paid = (
        booking.payments.exclude(pk=payment.pk).filter(status__in=Payment.PAID_ONCE).exists()
    )
    waiting = booking.status == Booking.Status.PENDING_PAYMENT
    if other_paid or not (waiting or booking.status == Booking.Status.CONFIRMED):
        why = "paid twice" if other_paid else f"paid while {booking.get_status_display().lower()}"
        _refund_duplicate(payment, booking, why)
        return False
    if waiting and booking.confirm(actor=ACTOR):
        notify.confirmed(booking, payment.receipt_url, payment=payment)
    return True


def _refund_duplicate(payment: Payment, booking: Booking, why: str) -> None:
    """Give back a payment the booking cannot use, in full, once."""
    audit.record(
        "payments.payment.duplicate",
        category=audit.Category.TRANSACTION,
        actor=ACTOR,
        target=payment,
        data={"booking": booking.pk, "why": why, "booking_status": booking.status},
    )
    amount = payment.refundable()
    if amount <= 0:
        return
    refund_request(
        booking_id=booking.pk,
        amount=amount,
        reason=f"Automatic: booking {why}",
        actor=ACTOR,
        payment=payment,
        stripe_reason="duplicate",
        reference=reference_for(f"duplicate:{payment.checkout_session_id}"),
    )
