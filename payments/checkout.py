"""From a booking to money: start Checkout, then settle what Stripe says happened.

:func:`start_checkout` creates one Checkout Session per booking (Stripe's idempotency
key is built from the booking's reference, and only that reference goes into
metadata). :func:`settle` applies a session as Stripe reports it *now* (the handlers
re-read it): paid → the payment is ``paid`` and the booking ``confirmed``, unless the
amount is not what the booking expected (flagged for review) or the booking is
already paid or no longer waiting (refunded automatically, once).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

import audit
from bookings import notify
from bookings.models import Booking
from bookings.money import format_money
from payments import stripe_gateway
from payments.models import Payment
from payments.services import reference_for, refund_request, sync_refunds

logger = logging.getLogger(__name__)

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


def start_checkout(booking: Booking) -> Payment:
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
    return Payment.objects.get_or_create(
        checkout_session_id=session.id,
        defaults={
            "booking": booking,
            "amount": booking.price_amount,
            "currency": booking.currency,
            "checkout_url": session.url or "",
            "session_status": session.status or "open",
        },
    )


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def settle(payment: Payment, session: stripe_gateway.CheckoutSession) -> str:
    """Apply a session as Stripe reports it now. Returns what happened, for the log:
    ``paid``, ``flagged_or_refunded``, ``awaiting`` or ``expired``."""
    if session.payment_status in ("paid", "no_payment_required"):
        return _settle_paid(payment, session)
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        payment.session_status = session.status or payment.session_status
        payment.payment_intent_id = session.payment_intent_id or payment.payment_intent_id
        payment.customer_id = session.customer_id or payment.customer_id
        payment.save(update_fields=["session_status", "payment_intent_id", "customer_id"])
        if session.status == "expired" and payment.status == Payment.Status.OPEN:
            payment.set_status(Payment.Status.EXPIRED, actor=ACTOR, reason="session expired")
            return "expired"
    return "awaiting"


def _settle_paid(payment: Payment, session: stripe_gateway.CheckoutSession) -> str:
    # The provider first, then our writes (the audit chain's lock is held to commit).
    intent = (
        stripe_gateway.retrieve_payment_intent(session.payment_intent_id)
        if session.payment_intent_id
        else None
    )
    charge = (
        stripe_gateway.retrieve_charge(intent.latest_charge_id)
        if intent is not None and intent.latest_charge_id
        else None
    )
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        booking = Booking.objects.select_for_update().get(pk=payment.booking_id)
        first = payment.status in (
            Payment.Status.OPEN,
            Payment.Status.FAILED,
            Payment.Status.EXPIRED,
        )
        _copy_facts(payment, session, charge)
        # A repeat (a replay, or the other of completed and async_payment_succeeded)
        # only refreshes the facts: the decisions were taken when it was first paid, and
        # taking them again after a cancellation would refund what the policy kept.
        if first:
            payment.paid_at = timezone.now()
            payment.save(update_fields=["paid_at"])
            payment.set_status(Payment.Status.PAID, actor=ACTOR, reason="Checkout paid")
            if not _decide(payment, booking, session, charge):
                return "flagged_or_refunded"
    if charge is not None and (charge.amount_refunded or charge.refunds):
        sync_refunds(payment, charge=charge, actor=ACTOR)
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
        _flag(payment, reason)
        return False
    if charge is not None and charge.risk_level in ELEVATED_RISK:
        _flag(payment, f"Radar risk level {charge.risk_level}")
    other_paid = (
        booking.payments.exclude(pk=payment.pk)
        .filter(status__in=(*Payment.REFUNDABLE, Payment.Status.REFUNDED, Payment.Status.DISPUTED))
        .exists()
    )
    waiting = booking.status == Booking.Status.PENDING_PAYMENT
    if other_paid or not (waiting or booking.status == Booking.Status.CONFIRMED):
        why = "paid twice" if other_paid else f"paid while {booking.get_status_display().lower()}"
        _refund_duplicate(payment, booking, why)
        return False
    if waiting and booking.confirm(actor=ACTOR):
        notify.confirmed(booking, payment.receipt_url)
    return True


def _copy_facts(
    payment: Payment, session: stripe_gateway.CheckoutSession, charge: stripe_gateway.Charge | None
) -> None:
    payment.amount = session.amount_total or payment.amount
    payment.currency = (session.currency or payment.currency).lower()
    payment.tax_amount = session.amount_tax
    payment.payment_intent_id = session.payment_intent_id or payment.payment_intent_id
    payment.customer_id = session.customer_id or payment.customer_id
    payment.session_status = session.status or "complete"
    if charge is not None:
        payment.charge_id = charge.id
        payment.card_brand = (charge.brand or "")[:20]
        payment.card_last4 = (charge.last4 or "")[:4]
        payment.receipt_url = charge.receipt_url or ""
        payment.risk_level = (charge.risk_level or "")[:20]
    payment.save(
        update_fields=[
            "amount",
            "currency",
            "tax_amount",
            "payment_intent_id",
            "customer_id",
            "session_status",
            "charge_id",
            "card_brand",
            "card_last4",
            "receipt_url",
            "risk_level",
        ]
    )


def _flag(payment: Payment, reason: str) -> None:
    if payment.needs_review and payment.review_reason == reason:
        return
    payment.needs_review = True
    payment.review_reason = reason[:200]
    payment.save(update_fields=["needs_review", "review_reason"])
    audit.record(
        "payments.payment.flagged",
        category=audit.Category.TRANSACTION,
        actor=ACTOR,
        target=payment,
        data={"reason": reason, "booking": payment.booking_id},
    )
    notify.staff_alert(
        f"Payment {payment.pk} needs review",
        [
            f"Booking {payment.booking_id}: {reason}.",
            f"Stripe payment: {payment.payment_intent_id}",
        ],
    )


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
        booking,
        amount=amount,
        reason=f"Automatic: booking {why}",
        actor=ACTOR,
        payment=payment,
        stripe_reason="duplicate",
        reference=reference_for(f"duplicate:{payment.checkout_session_id}"),
    )


def mark_failed(payment: Payment) -> bool:
    """An asynchronous payment (a bank debit) failed: the payment is ``failed``."""
    if payment.status != Payment.Status.OPEN:
        return False
    return payment.set_status(
        Payment.Status.FAILED, actor=ACTOR, reason="asynchronous payment failed"
    )
