"""Refunds, through one door: :func:`refund_request`.

Clients reach it by cancelling (the policy's amount), staff from the back-office,
handlers when a booking was paid twice. The refund row is committed before Stripe is
called, and Stripe's idempotency key is built from that row, so a crash or a retry
between the two can never refund twice: :func:`submit_refund` is safe to run again.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

import audit
from audit.masking import scrub_text
from bookings.models import Booking
from payments import stripe_gateway
from payments.models import Payment, Refund

logger = logging.getLogger(__name__)

# Stripe's reasons; anything else is our own wording, kept on our side only.
STRIPE_REASONS = {"duplicate", "fraudulent", "requested_by_customer"}


class RefundRefused(Exception):  # noqa: N818 (the outcome the caller shows)
    """The refund cannot be made as asked; the message says why, for the requester."""


def _actor_user(actor: Any) -> Any:
    """The requesting user, when the actor is one (a system component is a string)."""
    return actor if isinstance(actor, get_user_model()) else None


def refund_request(
    booking: Booking,
    *,
    amount: int,
    reason: str,
    actor: Any,
    payment: Payment | None = None,
    stripe_reason: str | None = "requested_by_customer",
) -> Refund:
    """Refund ``amount`` minor units of the booking's payment and return the refund.

    Bounded by what remains (pending refunds count); the request and its outcome are
    audited. A provider outage leaves the refund ``pending`` with the error recorded,
    for :func:`submit_refund` to try again; a refusal by Stripe marks it ``failed``.
    """
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise RefundRefused("The refund amount must be a positive number of minor units.")
    if stripe_reason is not None and stripe_reason not in STRIPE_REASONS:
        raise ValueError(f"Stripe knows no refund reason {stripe_reason!r}")
    with transaction.atomic():
        candidates = Payment.objects.select_for_update().filter(
            booking=booking, status__in=Payment.REFUNDABLE
        )
        if payment is not None:
            candidates = candidates.filter(pk=payment.pk)
        paid = candidates.order_by("paid_at", "pk").first()
        if paid is None:
            raise RefundRefused("This booking has no payment that can be refunded.")
        remaining = paid.refundable()
        if amount > remaining:
            raise RefundRefused(
                f"Only {remaining} {paid.currency.upper()} (minor units) remain to refund."
            )
        refund = Refund.objects.create(
            payment=paid, amount=amount, reason=reason[:200], requested_by=_actor_user(actor)
        )
        audit.record(
            "payments.refund.requested",
            category=audit.Category.TRANSACTION,
            actor=actor,
            target=refund,
            data={
                "payment": paid.pk,
                "booking": booking.pk,
                "amount": amount,
                "currency": paid.currency,
                "reason": reason,
                "remaining_before": remaining,
            },
        )
    return submit_refund(refund, actor=actor, stripe_reason=stripe_reason)


def submit_refund(
    refund: Refund, *, actor: Any, stripe_reason: str | None = "requested_by_customer"
) -> Refund:
    """Send a pending refund to Stripe (again): the same idempotency key every time."""
    if refund.status != Refund.Status.PENDING or refund.stripe_refund_id:
        return refund
    payment = refund.payment
    Refund.objects.filter(pk=refund.pk).update(attempts=refund.attempts + 1)
    refund.attempts += 1
    target = (
        {"payment_intent": payment.payment_intent_id}
        if payment.payment_intent_id
        else {"charge": payment.charge_id}
    )
    try:
        result = stripe_gateway.create_refund(
            refund_ref=refund.idempotency_ref,
            amount=refund.amount,
            reason=stripe_reason,
            **target,
        )
    except stripe_gateway.ProviderUnavailable as exc:
        _record_outcome(refund, actor=actor, status=Refund.Status.PENDING, error=exc)
        return refund
    except stripe_gateway.PaymentProviderError as exc:
        _record_outcome(refund, actor=actor, status=Refund.Status.FAILED, error=exc)
        return refund
    refund.stripe_refund_id = result.id
    _record_outcome(refund, actor=actor, status=result.status or Refund.Status.PENDING)
    return refund


def _record_outcome(
    refund: Refund, *, actor: Any, status: str, error: BaseException | None = None
) -> None:
    with transaction.atomic():
        refund.status = status
        refund.last_error = scrub_text(str(error))[:1000] if error else ""
        refund.save(update_fields=["status", "last_error", "stripe_refund_id", "updated_at"])
        audit.record(
            f"payments.refund.{'retry_scheduled' if error and status == 'pending' else status}",
            category=audit.Category.TRANSACTION,
            actor=actor,
            target=refund,
            data={
                "stripe_refund_id": refund.stripe_refund_id or "",
                "amount": refund.amount,
                "attempt": refund.attempts,
                "error": refund.last_error,
            },
        )
        payment = Payment.objects.get(pk=refund.payment_id)
        payment.reconcile_refunds(actor=actor)
    if error:
        logger.warning(
            "payments.refund.error",
            extra={"refund": str(refund.reference), "status": status, "error": refund.last_error},
        )


def refresh_refund(refund: Refund, *, actor: Any) -> Refund:
    """Read a refund Stripe has not finished (``pending``, ``requires_action``) again."""
    if not refund.stripe_refund_id or refund.status not in (
        Refund.Status.PENDING,
        Refund.Status.REQUIRES_ACTION,
    ):
        return refund
    try:
        result = stripe_gateway.retrieve_refund(refund.stripe_refund_id)
    except stripe_gateway.PaymentProviderError as exc:
        logger.warning(
            "payments.refund.refresh_failed",
            extra={"refund": str(refund.reference), "error": scrub_text(str(exc))},
        )
        return refund
    if result.status and result.status != refund.status:
        _record_outcome(refund, actor=actor, status=result.status)
    return refund


def retry_unfinished_refunds(*, older_than_seconds: int = 60, limit: int = 100) -> int:
    """Periodic: send refunds Stripe never confirmed (an outage) and re-read those it
    has not finished. Returns how many were looked at."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    unfinished = Refund.objects.filter(
        status__in=(Refund.Status.PENDING, Refund.Status.REQUIRES_ACTION), updated_at__lte=cutoff
    ).select_related("payment")[:limit]
    count = 0
    for refund in unfinished:
        count += 1
        if refund.stripe_refund_id:
            refresh_refund(refund, actor="payments.tasks")
        else:
            submit_refund(refund, actor="payments.tasks")
    return count
