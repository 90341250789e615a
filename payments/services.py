"""What happens to a payment, as Stripe reports it, and refunds through one door.

Payments report outcomes and decide nothing about bookings: a Checkout Session's
payment is created (:func:`payment_create_for_session`), becomes ``paid``
(:func:`payment_mark_paid`), ``expired`` (:func:`payment_sync_session`), ``failed``
or ``disputed``, or is flagged for a person; ``bookings`` calls these and moves the
booking. A payment belongs to a booking only by its ``booking_id``: nothing here
imports ``bookings``.

Refunds go through :func:`refund_request`. Clients reach it by cancelling (the
policy's amount), staff from the back-office (:func:`refund_propose`, and above the
approval threshold :func:`refund_approve` by a second Finance member), handlers when a
booking was paid twice.
The refund row is committed before Stripe is called, and Stripe's idempotency key is
built from that row, so a crash or a retry between the two can never refund twice:
:func:`refund_submit` is safe to run again. A payment under an open dispute, or whose
dispute was lost, is refused at that door (:class:`DisputeBlocksRefund`, audited).

Disputes follow Stripe through :func:`dispute_sync`: every dispute webhook hands it
the dispute as Stripe reports it now, and it moves the :class:`Dispute` and its payment
forward only, auditing each step and telling Finance.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

import audit
from core import outbox
from core.actors import Actor
from core.masking import scrub_text
from core.notify import staff_alert
from payments import stripe_gateway, thresholds
from payments.models import Dispute, Payment, Refund, RefundApproval
from payments.money import format_money

if TYPE_CHECKING:
    from accounts.models import User

logger = logging.getLogger(__name__)

# Stripe's reasons; anything else is our own wording, kept on our side only.
STRIPE_REASONS = {"duplicate", "fraudulent", "requested_by_customer"}


class NotReady(Exception):  # noqa: N818 (a state, not an error)
    """A fact arrived before the one it depends on (a refund before the payment):
    the caller tries again later (webhook handlers raise RetryLater)."""


class RefundRefused(Exception):  # noqa: N818 (the outcome the caller shows)
    """The refund cannot be made as asked; the message says why, for the requester."""


class NotEnoughLeft(RefundRefused):
    """Less remains to refund than asked (decided under the lock: another refund may
    have taken it meanwhile); ``shown`` says it as people read money."""

    def __init__(self, *, remaining: int, currency: str) -> None:
        super().__init__(f"Only {remaining} {currency.upper()} (minor units) remain to refund.")
        self.remaining = remaining
        self.currency = currency

    @property
    def shown(self) -> str:
        return f"Only {format_money(self.remaining, self.currency)} remains."


class DisputeBlocksRefund(RefundRefused):
    """The payment is under an open dispute (Stripe refuses to refund it) or lost one
    (the client's bank took the money back: refunding would pay the client twice)."""

    def __init__(self, payment: Payment, *, booking_level: bool = False) -> None:
        why = dispute_refusal(payment) or "its dispute does not allow a refund."
        if booking_level:
            why = f"This booking has no payment that can be refunded: {why}"
        super().__init__(why)
        self.payment = payment
        self.audited = False


def dispute_refusal(payment: Payment) -> str | None:
    """Why ``payment`` cannot be refunded because of a dispute, as staff read it (None:
    no dispute stands in the way). Shown by the admin's refund buttons too."""
    if payment.status not in (Payment.Status.DISPUTED, Payment.Status.DISPUTE_LOST):
        return None
    dispute = payment.disputes.order_by("-opened_at").first()
    named = f" ({dispute.stripe_dispute_id})" if dispute is not None else ""
    if payment.status == Payment.Status.DISPUTE_LOST:
        taken = (
            format_money(dispute.funds_withdrawn - dispute.funds_reinstated, dispute.currency)
            if dispute is not None and dispute.funds_withdrawn
            else "the money"
        )
        return (
            f"Payment {payment.pk} lost its dispute{named}: the client's bank took "
            f"{taken} back, so it is never refunded again."
        )
    return (
        f"Payment {payment.pk} is under an open dispute{named}: Stripe refuses refunds "
        "until it is closed. Answer it in the Stripe dashboard."
    )


def _audit_dispute_refusal(exc: DisputeBlocksRefund, *, actor: Actor, amount: Any) -> None:
    """The refused request, on the record (once, however many doors it went through)."""
    if exc.audited:
        return
    exc.audited = True
    payment = exc.payment
    with transaction.atomic():
        audit.record(
            "payments.refund.refused",
            category=audit.Category.TRANSACTION,
            actor=actor,
            target=payment,
            data={
                "booking": payment.booking_id,
                "amount": amount if isinstance(amount, int) else None,
                "currency": payment.currency,
                "payment_status": payment.status,
                "why": str(exc),
            },
        )
    logger.info(
        "payments.refund.refused_by_dispute",
        extra={"payment": payment.pk, "status": payment.status},
    )


# Namespace of the refund references derived from a decision (reference_for).
REFERENCE_NAMESPACE = uuid.UUID("6f1c8e0e-5a43-4d7e-9b7e-2f5c3b1d9a10")


def reference_for(decision: str) -> uuid.UUID:
    """A refund reference that is the same every time ``decision`` is taken again."""
    return uuid.uuid5(REFERENCE_NAMESPACE, decision)


def _actor_user(actor: Actor) -> User | None:
    """The requesting user, when the actor is one (a system component is a string)."""
    return actor if isinstance(actor, get_user_model()) else None


def refund_request(
    *,
    booking_id: int,
    amount: int,
    reason: str,
    actor: Actor,
    payment: Payment | None = None,
    stripe_reason: str | None = "requested_by_customer",
    reference: uuid.UUID | None = None,
) -> Refund:
    """Refund ``amount`` minor units of booking ``booking_id``'s payment (``payment``
    if given, else the first paid) and return the refund.

    Bounded by what remains (pending refunds count); the request and its outcome are
    audited. A provider outage leaves the refund ``pending`` with the error recorded,
    for :func:`refund_submit` to try again; a refusal by Stripe marks it ``failed``.

    ``reference``: a caller that may run twice for one decision (a webhook handler, a
    retried task) passes a reference derived from that decision (:func:`reference_for`):
    the second call finds the first refund, and Stripe's idempotency key is the same.
    """
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise RefundRefused("The refund amount must be a positive number of minor units.")
    if stripe_reason is not None and stripe_reason not in STRIPE_REASONS:
        raise ValueError(f"Stripe knows no refund reason {stripe_reason!r}")
    try:
        with transaction.atomic():
            # Every payment of the booking is locked, whatever its status, before
            # anything is read: requests for one decision (a double click, eight
            # parallel cancels) queue here, and each after the first finds the first's.
            locked = _lock_payments(booking_id)
            existing = Refund.objects.filter(reference=reference).first() if reference else None
            refund = existing or _create_refund(
                booking_id,
                locked,
                amount=amount,
                reason=reason,
                actor=actor,
                payment=payment,
                stripe_reason=stripe_reason,
                reference=reference,
            )
    except DisputeBlocksRefund as exc:
        _audit_dispute_refusal(exc, actor=actor, amount=amount)
        raise
    return _submit_now_or_after_commit(refund, actor=actor)


def _lock_payments(booking_id: int) -> list[Payment]:
    """Lock every payment of the booking, in one order (by pk). Every refund path
    takes its locks in the same order, so concurrent ones queue instead of
    deadlocking: an approval's row (when deciding one), then the booking's payments,
    then a refund's row, and last the audit chain's head (every audit entry)."""
    return list(Payment.objects.select_for_update().filter(booking_id=booking_id).order_by("pk"))


def _refundable(
    locked: list[Payment], *, amount: int, payment: Payment | None
) -> tuple[Payment, int]:
    """Of the booking's locked payments, the one to refund (``payment`` if given, else
    the first paid) and what remains of it; RefundRefused if ``amount`` is more, or
    DisputeBlocksRefund when a dispute stands in the way."""
    if payment is not None:
        asked = next((p for p in locked if p.pk == payment.pk), None)
        if asked is not None and asked.status in Payment.HELD_BY_DISPUTE:
            raise DisputeBlocksRefund(asked)
    candidates = [
        p
        for p in locked
        if p.status in Payment.REFUNDABLE and (payment is None or p.pk == payment.pk)
    ]
    if not candidates:
        held = next((p for p in locked if p.status in Payment.HELD_BY_DISPUTE), None)
        if held is not None:
            raise DisputeBlocksRefund(held, booking_level=True)
        raise RefundRefused("This booking has no payment that can be refunded.")
    paid = min(candidates, key=lambda p: (p.paid_at is None, p.paid_at, p.pk))
    remaining = paid.refundable()
    if amount > remaining:
        raise NotEnoughLeft(remaining=remaining, currency=paid.currency)
    return paid, remaining


def _create_refund(
    booking_id: int,
    locked: list[Payment],
    *,
    amount: int,
    reason: str,
    actor: Actor,
    payment: Payment | None,
    stripe_reason: str | None,
    reference: uuid.UUID | None,
) -> Refund:
    """The refund row and its audit entry, with the booking's payments locked."""
    paid, remaining = _refundable(locked, amount=amount, payment=payment)
    refund = Refund.objects.create(
        payment=paid,
        amount=amount,
        reason=reason[:200],
        requested_by=_actor_user(actor),
        stripe_reason=stripe_reason or "",
        **({"reference": reference} if reference is not None else {}),
    )
    audit.record(
        "payments.refund.requested",
        category=audit.Category.TRANSACTION,
        actor=actor,
        target=refund,
        data={
            "payment": paid.pk,
            "booking": booking_id,
            "amount": amount,
            "currency": paid.currency,
            "reason": reason,
            "remaining_before": remaining,
        },
    )
    return refund


def _submit_now_or_after_commit(refund: Refund, *, actor: Actor) -> Refund:
    """Call Stripe now, unless a caller's transaction is open (a webhook handler): then
    after it commits, from a task enqueued through the outbox, so no lock is held while
    Stripe answers and a broker outage only delays it. Beat also sends any refund
    that never reached Stripe."""
    if not transaction.get_connection().in_atomic_block:
        return refund_submit(refund=refund, actor=actor)
    user = _actor_user(actor)
    label = actor if isinstance(actor, str) else "payments"
    outbox.enqueue(
        "payments.tasks.submit_refund",
        refund.pk,
        user.pk if user is not None else None,
        label,
        dedup_key=f"submit_refund:{refund.reference}",
    )
    return refund


def refund_submit(*, refund: Refund, actor: Actor) -> Refund:
    """Send a pending refund to Stripe (again): the same idempotency key every time.

    One sender at a time: the caller first takes the refund's lease, and a refund
    being sent by someone else, or sent already, is returned as it is. (Two
    concurrent requests with one key make Stripe refuse the second with a 409.)
    """
    now = timezone.now()
    # A sender still holding the lease after REFUND_SUBMIT_LEASE_SECONDS has died, and
    # the refund may be sent again (longer than a Stripe call can last).
    lease = timedelta(seconds=settings.REFUND_SUBMIT_LEASE_SECONDS)
    claimed = (
        Refund.objects.filter(
            pk=refund.pk, status=Refund.Status.PENDING, stripe_refund_id__isnull=True
        )
        .filter(Q(submitting_at__isnull=True) | Q(submitting_at__lte=now - lease))
        .update(submitting_at=now, attempts=F("attempts") + 1)
    )
    refund.refresh_from_db()
    if not claimed:
        return refund
    payment = refund.payment
    target = (
        {"payment_intent": payment.payment_intent_id}
        if payment.payment_intent_id
        else {"charge": payment.charge_id}
    )
    try:
        result = stripe_gateway.create_refund(
            refund_ref=refund.idempotency_ref,
            amount=refund.amount,
            reason=refund.stripe_reason or None,
            **target,
        )
    except stripe_gateway.PaymentProviderError as exc:
        # An outage, or the same key in flight elsewhere (409): retried by beat.
        transient = isinstance(exc, stripe_gateway.ProviderUnavailable) or (
            isinstance(exc, stripe_gateway.IdempotencyConflict) and exc.http_status == 409
        )
        status = Refund.Status.PENDING if transient else Refund.Status.FAILED
        return _record_outcome(refund, actor=actor, status=status, error=exc)
    return _record_outcome(
        refund,
        actor=actor,
        status=result.status or Refund.Status.PENDING,
        stripe_refund_id=result.id,
    )


def _record_outcome(
    refund: Refund,
    *,
    actor: Actor,
    status: str,
    error: BaseException | None = None,
    stripe_refund_id: str | None = None,
) -> Refund:
    """What Stripe answered, applied to a refund it has not finished with: a refund
    already final here (synced from a webhook meanwhile) keeps what it says."""
    with transaction.atomic():
        # Locks in the one order every refund path takes (the booking's payments, then
        # the refund, then the audit chain's head): taking the payment's lock last,
        # after the audit head's, deadlocked with requests refunding the same payment.
        _lock_payments(
            Payment.objects.values_list("booking_id", flat=True).get(pk=refund.payment_id)
        )
        row = Refund.objects.select_for_update().get(pk=refund.pk)
        if row.status not in (Refund.Status.PENDING, Refund.Status.REQUIRES_ACTION):
            logger.info(
                "payments.refund.outcome_ignored",
                extra={"refund": str(row.reference), "status": row.status, "answer": status},
            )
            refund.refresh_from_db()
            return refund
        row.status = status
        row.stripe_refund_id = stripe_refund_id or row.stripe_refund_id
        row.last_error = scrub_text(str(error))[:1000] if error else ""
        row.submitting_at = None
        row.save(
            update_fields=[
                "status",
                "last_error",
                "stripe_refund_id",
                "submitting_at",
                "updated_at",
            ]
        )
        audit.record(
            f"payments.refund.{'retry_scheduled' if error and status == 'pending' else status}",
            category=audit.Category.TRANSACTION,
            actor=actor,
            target=row,
            data={
                "stripe_refund_id": row.stripe_refund_id or "",
                "amount": row.amount,
                "attempt": row.attempts,
                "error": row.last_error,
            },
        )
        payment = Payment.objects.get(pk=row.payment_id)
        payment.reconcile_refunds(actor=actor)
    if error:
        logger.warning(
            "payments.refund.error",
            extra={"refund": str(row.reference), "status": status, "error": row.last_error},
        )
    refund.refresh_from_db()
    return refund


def refund_refresh(*, refund: Refund, actor: Actor) -> Refund:
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
        return _record_outcome(refund, actor=actor, status=result.status)
    return refund


def refund_retry_unfinished(*, older_than_seconds: int = 60, limit: int = 100) -> int:
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
            refund_refresh(refund=refund, actor="payments.tasks")
        else:
            refund_submit(refund=refund, actor="payments.tasks")
    return count


def payment_sync_refunds(
    *, payment: Payment, actor: Actor, charge: stripe_gateway.Charge | None = None
) -> int:
    """Make our refunds match Stripe's for this payment's charge; returns how many
    rows changed. A refund we did not ask for (made in the Stripe dashboard) is
    recorded as ``external``; one we asked for but never heard back from is matched
    by the reference in its metadata."""
    if charge is None:
        if not payment.charge_id:
            raise NotReady("the payment has no charge yet")
        charge = stripe_gateway.retrieve_charge(payment.charge_id)
    if charge.more_refunds:
        logger.warning("payments.refund.sync_truncated", extra={"payment": payment.pk})
    changed = 0
    with transaction.atomic():
        Payment.objects.select_for_update().get(pk=payment.pk)
        for remote in charge.refunds:
            changed += _sync_one(payment, remote, actor=actor)
        Payment.objects.get(pk=payment.pk).reconcile_refunds(actor=actor)
    return changed


def _ours(remote: stripe_gateway.Refund) -> Refund | None:
    row = Refund.objects.filter(stripe_refund_id=remote.id).first()
    if row is not None:
        return row
    ref = remote.metadata.get("refund", "")
    if ref.startswith("rf_"):
        try:
            reference = uuid.UUID(hex=ref.removeprefix("rf_"))
        except ValueError:
            return None
        return Refund.objects.filter(reference=reference, stripe_refund_id__isnull=True).first()
    return None


def _sync_one(payment: Payment, remote: stripe_gateway.Refund, *, actor: Actor) -> int:
    status = remote.status or Refund.Status.PENDING
    if status not in Refund.Status.values:
        status = Refund.Status.PENDING
    row = _ours(remote)
    if row is None:
        row = Refund.objects.create(
            payment=payment,
            amount=remote.amount,
            reason=f"Made in the Stripe dashboard ({remote.reason or 'no reason given'})"[:200],
            external=True,
            stripe_refund_id=remote.id,
            status=status,
        )
        audit.record(
            "payments.refund.external",
            category=audit.Category.TRANSACTION,
            actor=actor,
            target=row,
            data={"stripe_refund_id": remote.id, "amount": remote.amount, "status": status},
        )
        return 1
    if row.stripe_refund_id == remote.id and row.status == status:
        return 0
    row.stripe_refund_id = remote.id
    row.status = status
    row.save(update_fields=["stripe_refund_id", "status", "updated_at"])
    audit.record(
        f"payments.refund.{status}",
        category=audit.Category.TRANSACTION,
        actor=actor,
        target=row,
        data={"stripe_refund_id": remote.id, "amount": row.amount, "source": "stripe"},
    )
    return 1


# --- Refunds from the back-office, with four eyes above the threshold ---------------------

ISSUE_REFUND = "payments.issue_refund"
APPROVE_REFUND = "payments.approve_refund"
REASON_MAX = 200


class ApprovalRefused(Exception):  # noqa: N818 (the outcome the page shows)
    """The approval cannot be decided as asked; the message says why."""


def backoffice_reference(*, payment: Payment, nonce: uuid.UUID) -> uuid.UUID:
    """The reference of one refund form's submission (``nonce`` comes with the form):
    submitting it twice, or from two tabs at once, is one decision."""
    return reference_for(f"backoffice:{payment.pk}:{nonce}")


def refund_propose(
    *,
    payment: Payment,
    amount: int,
    reason: str,
    actor: User,
    policy_amount: int,
    reference: uuid.UUID,
    permission: str | None = ISSUE_REFUND,
) -> Refund | RefundApproval:
    """A staff member's refund of ``amount`` minor units of ``payment``.

    Made now (:func:`refund_request`) when everything refunded of the payment, this
    included, stays within ``REFUND_APPROVAL_THRESHOLD`` and within ``policy_amount``,
    what the agreed policy gives back of it in all (the booking's reckoning: payments
    knows no policy); otherwise it waits, as a :class:`RefundApproval`, for a second
    Finance member. Counting what was refunded before, under the booking's payments'
    lock, means refunds one after another, or at once, cannot add up past either.
    ``reference`` identifies the decision: a repeat returns what the first made.
    ``permission``: what the caller's door needs of ``actor`` (None: checked by the
    caller when the decision was taken, e.g. a cancellation Calendly reports later).
    """
    if permission is not None and not actor.has_perm(permission):
        raise PermissionDenied(f"this refund needs {permission}")
    reason = reason.strip()
    if not reason:
        raise RefundRefused("Give a reason for the refund.")
    if len(reason) > REASON_MAX:
        raise RefundRefused(f"The reason may be at most {REASON_MAX} characters.")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise RefundRefused("The refund amount must be a positive number of minor units.")
    try:
        return _propose(
            payment=payment,
            amount=amount,
            reason=reason,
            actor=actor,
            policy_amount=policy_amount,
            reference=reference,
        )
    except DisputeBlocksRefund as exc:
        _audit_dispute_refusal(exc, actor=actor, amount=amount)
        raise


def _propose(
    *,
    payment: Payment,
    amount: int,
    reason: str,
    actor: User,
    policy_amount: int,
    reference: uuid.UUID,
) -> Refund | RefundApproval:
    with transaction.atomic():
        # The same lock as refund_request's: concurrent submissions decide one by one.
        locked = _lock_payments(payment.booking_id)
        earlier: Refund | RefundApproval | None = (
            RefundApproval.objects.filter(reference=reference).first()
            or Refund.objects.filter(reference=reference).first()
        )
        if earlier is not None:
            if earlier.payment_id != payment.pk:
                raise RefundRefused("This form was used for another payment: open it again.")
            if isinstance(earlier, RefundApproval):
                return earlier
            refund = earlier
        else:
            waiting = RefundApproval.objects.filter(
                payment=payment, status=RefundApproval.Status.PENDING
            ).first()
            if waiting is not None:
                # One decision at a time: refunds made beside a waiting one would decide
                # for the approver, and waiting ones would pile up past what was paid.
                raise RefundRefused(
                    f"A refund of {format_money(waiting.amount, waiting.currency)} of this "
                    "payment waits for approval: approve or reject it first."
                )
            current, remaining = _refundable(locked, amount=amount, payment=payment)
            committed = current.committed_refunds()
            over = thresholds.current().exceeded_by(
                amount=committed + amount, currency=current.currency, paid=current.amount
            )
            beyond_policy = committed + amount > policy_amount
            if over or beyond_policy:
                return _approval_create(
                    payment=current,
                    amount=amount,
                    reason=reason,
                    actor=actor,
                    why={"over_threshold": over, "beyond_policy": beyond_policy},
                    reference=reference,
                    remaining=remaining,
                )
            # The row now, under the lock; Stripe once the lock is let go.
            refund = refund_request(
                booking_id=payment.booking_id,
                amount=amount,
                reason=reason,
                actor=actor,
                payment=current,
                reference=reference,
            )
    return _submit_now_or_after_commit(refund, actor=actor)


def _approval_create(
    *,
    payment: Payment,
    amount: int,
    reason: str,
    actor: User,
    why: dict[str, bool],
    reference: uuid.UUID,
    remaining: int,
) -> RefundApproval:
    approval = RefundApproval.objects.create(
        payment=payment,
        reference=reference,
        amount=amount,
        currency=payment.currency,
        reason=reason,
        beyond_policy=why["beyond_policy"],
        requested_by=actor,
    )
    audit.record(
        "payments.refund.approval_requested",
        category=audit.Category.TRANSACTION,
        actor=actor,
        target=approval,
        data={
            "payment": payment.pk,
            "booking": payment.booking_id,
            "amount": amount,
            "currency": payment.currency,
            "reason": reason,
            "remaining_before": remaining,
            **why,
        },
    )
    return approval


def refund_approve(*, approval_id: int, actor: User) -> Refund:
    """A second Finance member approves: the refund is made (once) and returned.

    The approval's row is locked while it is decided, so of two approvers at once
    one refunds and the other is told it was approved already. The requester cannot
    approve their own (refused and audited)."""
    if not actor.has_perm(APPROVE_REFUND):
        raise PermissionDenied("approving refunds needs payments.approve_refund")
    with transaction.atomic():
        approval = RefundApproval.objects.select_for_update().get(pk=approval_id)
        refusal = _approval_refusal(approval, actor) or dispute_refusal(approval.payment)
        if refusal is None:
            # The refund row is made under the payment's lock in this transaction,
            # and sent to Stripe once it commits (here, or by the outbox's task).
            refund = refund_request(
                booking_id=approval.payment.booking_id,
                amount=approval.amount,
                reason=approval.reason,
                actor=actor,
                payment=approval.payment,
                reference=approval.reference,
            )
            approval.status = RefundApproval.Status.APPROVED
            approval.decided_by = actor
            approval.decided_at = timezone.now()
            approval.refund = refund
            approval.save(update_fields=["status", "decided_by", "decided_at", "refund"])
            audit.record(
                "payments.refund.approved",
                category=audit.Category.TRANSACTION,
                actor=actor,
                target=approval,
                data={
                    "refund": str(refund.reference),
                    "requested_by": approval.requested_by_id,
                    "amount": approval.amount,
                    "currency": approval.currency,
                },
            )
    if refusal is not None:
        _audit_refusal(approval, actor, refusal)
        raise ApprovalRefused(refusal)
    return refund_submit(refund=refund, actor=actor)


def refund_reject(*, approval_id: int, actor: User) -> RefundApproval:
    """Reject a waiting refund: a Finance member who may approve, or the requester
    withdrawing their own. Nothing reaches Stripe."""
    with transaction.atomic():
        approval = RefundApproval.objects.select_for_update().get(pk=approval_id)
        own = approval.requested_by_id == actor.pk
        if not own and not actor.has_perm(APPROVE_REFUND):
            raise PermissionDenied("rejecting refunds needs payments.approve_refund")
        refusal = _decided_already(approval)
        if refusal is None:
            approval.status = RefundApproval.Status.REJECTED
            approval.decided_by = actor
            approval.decided_at = timezone.now()
            approval.save(update_fields=["status", "decided_by", "decided_at"])
            audit.record(
                "payments.refund.withdrawn" if own else "payments.refund.rejected",
                category=audit.Category.TRANSACTION,
                actor=actor,
                target=approval,
                data={"amount": approval.amount, "currency": approval.currency},
            )
    if refusal is not None:
        raise ApprovalRefused(refusal)
    return approval


def _decided_already(approval: RefundApproval) -> str | None:
    if approval.status == RefundApproval.Status.PENDING:
        return None
    return f"This refund was {approval.get_status_display().lower()} already."


def _approval_refusal(approval: RefundApproval, actor: User) -> str | None:
    if approval.requested_by_id == actor.pk:
        return "You asked for this refund: another Finance member must approve it."
    return _decided_already(approval)


def _audit_refusal(approval: RefundApproval, actor: User, refusal: str) -> None:
    audit.record(
        "payments.refund.approval_refused",
        category=audit.Category.SECURITY,
        actor=actor,
        target=approval,
        data={
            "reason": refusal,
            "own_request": approval.requested_by_id == actor.pk,
            "status": approval.status,
        },
    )


# --- What Stripe reports about a payment -------------------------------------------------


def payment_for_charge(charge_id: str | None, payment_intent_id: str | None) -> Payment | None:
    if charge_id:
        found = Payment.objects.filter(charge_id=charge_id).first()
        if found is not None:
            return found
    if payment_intent_id:
        return Payment.objects.filter(payment_intent_id=payment_intent_id).first()
    return None


def payment_create_for_session(
    *,
    booking_id: int,
    session: stripe_gateway.CheckoutSession,
    amount: int,
    currency: str,
) -> tuple[Payment, bool]:
    """The payment for a Checkout Session, created (True) the first time it is seen,
    for ``amount`` minor units of ``currency`` (what the booking costs)."""
    return Payment.objects.get_or_create(
        checkout_session_id=session.id,
        defaults={
            "booking_id": booking_id,
            "amount": amount,
            "currency": currency,
            "checkout_url": session.url or "",
            "session_status": session.status or "open",
        },
    )


def payment_sync_session(
    *, payment: Payment, session: stripe_gateway.CheckoutSession, actor: Actor
) -> bool:
    """An unpaid session as Stripe reports it now, copied onto its payment; an open
    payment whose session expired becomes ``expired`` (True)."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        payment.session_status = session.status or payment.session_status
        payment.payment_intent_id = session.payment_intent_id or payment.payment_intent_id
        payment.customer_id = session.customer_id or payment.customer_id
        payment.save(update_fields=["session_status", "payment_intent_id", "customer_id"])
        if session.status == "expired" and payment.status == Payment.Status.OPEN:
            payment.set_status(Payment.Status.EXPIRED, actor=actor, reason="session expired")
            return True
    return False


def payment_mark_paid(
    *,
    payment: Payment,
    session: stripe_gateway.CheckoutSession,
    charge: stripe_gateway.Charge | None,
    actor: Actor,
) -> bool:
    """A paid session: the payment takes Stripe's facts (amount, tax, card, receipt,
    Radar's risk level) and, the first time, becomes ``paid`` (True).

    A repeat (a replay, or the other of completed and async_payment_succeeded) only
    refreshes the facts and returns False: the caller decides what a new payment means
    for its booking once, when it is first paid. Call it with the payment locked
    (``select_for_update``) in the caller's transaction."""
    first = payment.status in (
        Payment.Status.OPEN,
        Payment.Status.FAILED,
        Payment.Status.EXPIRED,
    )
    if first:
        payment.paid_at = timezone.now()
    _copy_facts(payment, session, charge, paid_at=first)
    if first:
        payment.set_status(Payment.Status.PAID, actor=actor, reason="Checkout paid")
    return first


def _copy_facts(
    payment: Payment,
    session: stripe_gateway.CheckoutSession,
    charge: stripe_gateway.Charge | None,
    *,
    paid_at: bool = False,
) -> None:
    """Stripe's facts onto ``payment``, saved; ``paid_at``: its ``paid_at`` too, in the
    same UPDATE."""
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
            *(["paid_at"] if paid_at else []),
        ]
    )


def payment_flag(*, payment: Payment, reason: str, actor: Actor) -> None:
    """Flag a payment for review (audited) and tell Finance; a repeat is a no-op."""
    if payment.needs_review and payment.review_reason == reason:
        return
    payment.needs_review = True
    payment.review_reason = reason[:200]
    payment.save(update_fields=["needs_review", "review_reason"])
    audit.record(
        "payments.payment.flagged",
        category=audit.Category.TRANSACTION,
        actor=actor,
        target=payment,
        data={"reason": reason, "booking": payment.booking_id},
    )
    staff_alert(
        f"Payment {payment.pk} needs review",
        [
            f"Booking {payment.booking_id}: {reason}.",
            f"Stripe payment: {payment.payment_intent_id}",
        ],
    )


def payment_mark_failed(*, payment: Payment, actor: Actor) -> bool:
    """An asynchronous payment (a bank debit) failed: the payment is ``failed``."""
    if payment.status != Payment.Status.OPEN:
        return False
    return payment.set_status(
        Payment.Status.FAILED, actor=actor, reason="asynchronous payment failed"
    )


# --- Disputes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DisputeOutcome:
    """A dispute after :func:`dispute_sync`, and the steps that sync made (empty: a
    repeat or a stale report)."""

    dispute: Dispute
    steps: tuple[str, ...]


def dispute_sync(
    *, payment: Payment, dispute: stripe_gateway.Dispute, actor: Actor
) -> DisputeOutcome:
    """The dispute as Stripe reports it now (re-read by the caller), applied to our
    record of it and to its payment, forward only (see :meth:`Dispute.absorb`).

    Its payment is ``disputed`` while the dispute is open, ``dispute_lost`` once lost,
    and back to what its refunds make it once the dispute closes in our favour (won,
    an inquiry closed, prevented). Each step is audited (``payments.dispute.opened``,
    ``.funds_withdrawn``, ``.updated``, ``.won``, ``.lost``, ``.funds_reinstated``,
    ...) and Finance is told once per sync that made any. NotReady while the payment
    is still open."""
    if payment.status == Payment.Status.OPEN:
        raise NotReady("the disputed payment is not recorded as paid yet")
    remote = [
        {
            "id": item.id,
            "amount": item.amount,
            "fee": item.fee,
            "net": item.net,
            "created": item.created.isoformat() if item.created else None,
        }
        for item in dispute.balance_transactions
    ]
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        if payment.status == Payment.Status.OPEN:
            raise NotReady("the disputed payment is not recorded as paid yet")
        row = Dispute.objects.select_for_update().filter(stripe_dispute_id=dispute.id).first()
        steps: list[str] = []
        if row is None:
            row = _dispute_new(payment, dispute)
            steps.append("opened")
        steps += row.absorb(
            status=dispute.status,
            evidence_due_by=dispute.evidence_due_by,
            balance_transactions=remote,
        )
        if steps:
            row.save()
        for step in steps:
            _audit_dispute_step(row, step, actor=actor)
        _payment_after_dispute(payment, row, actor=actor)
        if steps:
            _alert_dispute(payment, row, steps)
    return DisputeOutcome(dispute=row, steps=tuple(steps))


def _dispute_new(payment: Payment, dispute: stripe_gateway.Dispute) -> Dispute:
    """An unsaved record of a dispute first seen now. It starts where every dispute
    starts (awaiting a response), so that :meth:`Dispute.absorb` records each step of
    one first seen later in its life (closed already, say) as the others are."""
    first = (
        Dispute.Status.WARNING_NEEDS_RESPONSE
        if dispute.status.startswith("warning_")
        else Dispute.Status.NEEDS_RESPONSE
    )
    return Dispute(
        stripe_dispute_id=dispute.id,
        payment=payment,
        amount=dispute.amount,
        currency=dispute.currency.lower(),
        reason=(dispute.reason or "")[:50],
        status=first,
        evidence_due_by=dispute.evidence_due_by,
        opened_at=dispute.created or timezone.now(),
    )


def _audit_dispute_step(row: Dispute, step: str, *, actor: Actor) -> None:
    audit.record(
        f"payments.dispute.{step}",
        category=audit.Category.TRANSACTION,
        actor=actor,
        target=row,
        data={
            "stripe_dispute_id": row.stripe_dispute_id,
            "payment": row.payment_id,
            "status": row.status,
            "reason": row.reason,
            "amount": row.amount,
            "currency": row.currency,
            "funds_withdrawn": row.funds_withdrawn,
            "funds_reinstated": row.funds_reinstated,
            "fees": row.fees,
            "evidence_due_by": row.evidence_due_by.isoformat() if row.evidence_due_by else None,
        },
    )


def _payment_after_dispute(payment: Payment, row: Dispute, *, actor: Actor) -> None:
    """The payment's status as its disputes make it (a no-op when it is so already)."""
    why = f"dispute {row.stripe_dispute_id} {row.status}"
    if payment.status == Payment.Status.DISPUTE_LOST:
        return  # the money is gone for good, whatever another dispute does
    if row.is_lost:
        payment.set_status(Payment.Status.DISPUTE_LOST, actor=actor, reason=why)
    elif row.is_open:
        payment.set_status(
            Payment.Status.DISPUTED, actor=actor, reason=f"{why}: {row.reason or 'no reason'}"
        )
    elif (
        payment.status == Payment.Status.DISPUTED
        and not payment.disputes.filter(
            status__in=[s for s in Dispute.Status.values if s not in Dispute.CLOSED]
        ).exists()
    ):
        payment.restore_from_refunds(actor=actor, why=why)


_STEP_WORDS = {
    "opened": "opened",
    "funds_withdrawn": "funds withdrawn",
    "updated": "updated",
    "funds_reinstated": "funds reinstated",
}


def _alert_dispute(payment: Payment, row: Dispute, steps: list[str]) -> None:
    """Tell Finance what this sync changed: ids and amounts only, no personal data."""
    money = row.currency
    lines = [
        f"Stripe dispute {row.stripe_dispute_id}: {row.reason or 'no reason given'}, "
        f"{format_money(row.amount, money)}, now {row.get_status_display().lower()}."
    ]
    for step in steps:
        if step == "opened":
            lines.append(
                f"Payment {payment.pk} (booking {payment.booking_id}) is now marked disputed."
            )
        elif step == "funds_withdrawn":
            lines.append(
                f"Stripe withdrew {format_money(row.funds_withdrawn, money)} from our balance "
                f"(dispute fees so far {format_money(row.fees, money)})."
            )
        elif step == "funds_reinstated":
            lines.append(f"Stripe reinstated {format_money(row.funds_reinstated, money)}.")
        elif step == Dispute.Status.LOST:
            lines.append("The dispute is lost: the payment is never to be refunded again.")
        elif step in Dispute.CLOSED_FOR_US:
            lines.append("The dispute closed in our favour: the payment counts as paid again.")
    if row.is_open and row.status in Dispute.AWAITING_EVIDENCE and row.evidence_due_by:
        lines.append(
            f"Evidence is due by {row.evidence_due_by.astimezone(UTC):%Y-%m-%d %H:%M} UTC: "
            "answer it in the Stripe dashboard."
        )
    lines.append(f"The payment's net amount is now {format_money(payment.net_amount, money)}.")
    closing = [step for step in steps if step in Dispute.CLOSED]
    if "opened" in steps:
        subject = f"Dispute on payment {payment.pk}"
    else:
        # The outcome, when this sync saw one, says most: won, lost.
        headline = closing[0] if closing else steps[-1]
        word = _STEP_WORDS.get(headline) or Dispute.Status(headline).label.lower()
        subject = f"Dispute {row.stripe_dispute_id} on payment {payment.pk}: {word}"
    staff_alert(subject, lines)
