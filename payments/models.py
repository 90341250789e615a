"""Payments for bookings and their refunds: Stripe's ids only, never card data.

A payment's refund status (``partially_refunded``, ``refunded``) follows from its
succeeded refunds (:meth:`Payment.reconcile_refunds`); every status change is audited.
A client's dispute is a :class:`Dispute`, kept as Stripe reports it: while it is open
the payment is ``disputed``, once lost ``dispute_lost`` (never refunded again), once
won back to what its refunds make it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import Sum
from django.utils import timezone

import audit
from core.actors import Actor
from payments import checks  # noqa: F401 (registers the system checks)
from payments.money import format_money


class Payment(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open (Checkout not completed)"
        PAID = "paid", "Paid"
        PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
        REFUNDED = "refunded", "Refunded"
        # An open dispute, and nothing else: retention and data-subject requests hold
        # a payment while it is so.
        DISPUTED = "disputed", "Disputed"
        # The client's bank took the money back: nothing of it is ever refunded again.
        DISPUTE_LOST = "dispute_lost", "Dispute lost (charged back)"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired"

    REFUNDABLE = (Status.PAID, Status.PARTIALLY_REFUNDED)
    # A dispute stands in the way of any refund: open (Stripe refuses one) or lost.
    HELD_BY_DISPUTE = (Status.DISPUTED, Status.DISPUTE_LOST)
    # Paid at some point, whatever happened since.
    PAID_ONCE = (*REFUNDABLE, Status.REFUNDED, Status.DISPUTED, Status.DISPUTE_LOST)

    # Named, not imported: bookings sits above payments and reacts to its outcomes.
    booking = models.ForeignKey(
        "bookings.Booking", on_delete=models.PROTECT, related_name="payments"
    )
    checkout_session_id = models.CharField(max_length=255, unique=True)
    payment_intent_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    charge_id = models.CharField(max_length=255, blank=True)
    customer_id = models.CharField(max_length=255, blank=True)
    # Where the client pays (Stripe's hosted page); sent in the "finish paying" email.
    checkout_url = models.URLField(max_length=1000, blank=True)
    # Stripe's session status (open, complete, expired): "complete" but unpaid is an
    # asynchronous payment on its way, which the hold must not expire.
    session_status = models.CharField(max_length=20, default="open")
    amount = models.PositiveBigIntegerField()  # minor units
    currency = models.CharField(max_length=3)
    tax_amount = models.PositiveBigIntegerField(default=0)
    card_brand = models.CharField(max_length=20, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    receipt_url = models.URLField(max_length=500, blank=True)
    risk_level = models.CharField(max_length=20, blank=True)  # Radar: normal, elevated, highest
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    needs_review = models.BooleanField(default=False)
    review_reason = models.CharField(max_length=200, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        # The back-office list's order (its default, then the pk for a total order).
        indexes = [models.Index(fields=["-created_at", "-id"], name="payments_created_idx")]

    def __str__(self) -> str:
        shown = format_money(self.amount, self.currency) if self.currency else self.amount
        return f"Payment {self.pk} of {shown} ({self.display_status})"

    @property
    def is_processing(self) -> bool:
        """A bank debit on its way: Checkout is complete, the money has not arrived."""
        return self.status == self.Status.OPEN and self.session_status == "complete"

    @property
    def display_status(self) -> str:
        """The status as people read it, the same on every page, email and list: an open
        payment whose Checkout is complete is processing, not "Checkout not completed"."""
        return "Payment processing" if self.is_processing else self.get_status_display()

    def committed_refunds(self) -> int:
        """Minor units refunded or on their way (a pending refund counts)."""
        return (
            self.refunds.filter(status__in=Refund.COMMITTED).aggregate(total=Sum("amount"))["total"]
            or 0
        )

    def refundable(self) -> int:
        return max(0, self.amount - self.committed_refunds())

    def succeeded_refunds(self) -> int:
        """Minor units Stripe has refunded."""
        return (
            self.refunds.filter(status=Refund.Status.SUCCEEDED).aggregate(total=Sum("amount"))[
                "total"
            ]
            or 0
        )

    @property
    def net_amount(self) -> int:
        """What this payment leaves with us, in minor units: paid - refunded - withdrawn
        by disputes + reinstated after won ones. Stripe's fees (a dispute's included)
        are not counted, as they are not in what was paid either.

        Computed, not stored: it follows from the refunds and disputes, which each keep
        their own audited history, so it can never disagree with them."""
        paid = self.amount if self.paid_at is not None else 0
        disputed = self.disputes.aggregate(
            withdrawn=Sum("funds_withdrawn"), reinstated=Sum("funds_reinstated")
        )
        return (
            paid
            - self.succeeded_refunds()
            - (disputed["withdrawn"] or 0)
            + (disputed["reinstated"] or 0)
        )

    def set_status(self, status: str, *, actor: Actor, reason: str = "") -> bool:
        """Change status (audited); False if it already was ``status``."""
        with transaction.atomic():
            current = Payment.objects.select_for_update().get(pk=self.pk)
            self.status = current.status
            if current.status == status:
                return False
            self.status = status
            self.save(update_fields=["status"])
            audit.record(
                f"payments.payment.{status}",
                category=audit.Category.TRANSACTION,
                actor=actor,
                target=self,
                data={"from": current.status, "to": status, "reason": reason},
            )
        return True

    def reconcile_refunds(self, *, actor: Actor) -> bool:
        """Paid, partially refunded or refunded, from what has really been refunded.
        A disputed, failed or open payment keeps its status."""
        if self.status not in (*self.REFUNDABLE, self.Status.REFUNDED):
            return False
        return self.restore_from_refunds(actor=actor)

    def restore_from_refunds(self, *, actor: Actor, why: str = "") -> bool:
        """Paid, partially refunded or refunded, from the refunds alone: also how a
        payment comes back from a dispute that did not take the money."""
        succeeded = self.succeeded_refunds()
        if succeeded >= self.amount:
            status = self.Status.REFUNDED
        elif succeeded:
            status = self.Status.PARTIALLY_REFUNDED
        else:
            status = self.Status.PAID
        reason = f"refunded {succeeded} of {self.amount}"
        return self.set_status(status, actor=actor, reason=f"{why}: {reason}" if why else reason)


class Refund(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        REQUIRES_ACTION = "requires_action", "Requires action"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    # Counted against what remains refundable.
    COMMITTED = (Status.PENDING, Status.REQUIRES_ACTION, Status.SUCCEEDED)

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    # Our public reference: the Stripe idempotency key and metadata are built from it.
    reference = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    amount = models.PositiveBigIntegerField()
    reason = models.CharField(max_length=200)
    # The reason Stripe is given (duplicate, fraudulent, requested_by_customer), if any.
    stripe_reason = models.CharField(max_length=30, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # Made in the Stripe dashboard, found by reconciliation rather than requested here.
    external = models.BooleanField(default=False)
    stripe_refund_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # Set while one process sends the refund to Stripe: a second sender (a concurrent
    # cancel, the retry task) leaves it alone until the lease runs out.
    submitting_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["-created_at", "-id"], name="refunds_created_idx")]

    def __str__(self) -> str:
        shown = format_money(self.amount, self.payment.currency)
        return f"Refund {self.reference} of {shown} ({self.get_status_display()})"

    @property
    def idempotency_ref(self) -> str:
        return f"rf_{self.reference.hex}"


class RefundApproval(models.Model):
    """A refund from the back-office waiting for a second Finance member ("four eyes"):
    above ``REFUND_APPROVAL_THRESHOLD`` or beyond what the agreed policy gives.

    Stripe is called only once someone other than the requester approves; the refund
    then made carries this approval's ``reference``, so approving twice refunds once.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for approval"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="approvals")
    # From the request's form: the same submission twice is one approval (and one refund).
    reference = models.UUIDField(unique=True, editable=False)
    amount = models.PositiveBigIntegerField()  # minor units
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=200)
    # Beyond what the agreed policy gives now, as the booking's page computed it.
    beyond_policy = models.BooleanField(default=False)
    # The record of who asked and who decided must outlive any change to the accounts.
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    refund = models.OneToOneField(
        Refund, on_delete=models.PROTECT, null=True, blank=True, related_name="approval"
    )

    class Meta:
        ordering = ["-requested_at"]
        permissions = [
            ("issue_refund", "Can issue refunds from the back-office"),
            ("approve_refund", "Can approve another member's refund"),
        ]
        constraints = [
            # The requester may withdraw (reject) their own request, never approve it.
            models.CheckConstraint(
                condition=~models.Q(status="approved")
                | (
                    models.Q(decided_by__isnull=False)
                    & ~models.Q(decided_by=models.F("requested_by"))
                ),
                name="refund_approval_second_person",
            ),
            models.CheckConstraint(
                condition=models.Q(amount__gt=0), name="refund_approval_positive"
            ),
        ]
        indexes = [models.Index(fields=["status", "requested_at"], name="refund_approval_queue")]

    def __str__(self) -> str:
        shown = format_money(self.amount, self.currency)
        return f"Refund approval {self.pk} of {shown} ({self.get_status_display()})"


class Dispute(models.Model):
    """A client's dispute of a payment's charge, as Stripe last reported it.

    Every webhook about it re-reads the dispute from Stripe and hands it to
    :meth:`absorb`, which only ever moves forward: a status earlier in the dispute's
    life than the one recorded (a stale read, deliveries out of order) is not taken,
    and the money it moved is the union of every balance transaction seen, by id, so
    a repeat changes nothing.
    """

    class Status(models.TextChoices):
        # Stripe's names. "warning_*" is an inquiry (no money moved yet), the others a
        # chargeback.
        WARNING_NEEDS_RESPONSE = "warning_needs_response", "Inquiry: needs response"
        WARNING_UNDER_REVIEW = "warning_under_review", "Inquiry: under review"
        WARNING_CLOSED = "warning_closed", "Inquiry closed"
        NEEDS_RESPONSE = "needs_response", "Needs response"
        UNDER_REVIEW = "under_review", "Under review"
        WON = "won", "Won"
        LOST = "lost", "Lost"
        PREVENTED = "prevented", "Prevented"

    # Where a dispute is in its life: a status never moves to a lower rank. An inquiry
    # may escalate to a chargeback; a closed dispute stays closed.
    RANK: dict[str, int] = {
        Status.WARNING_NEEDS_RESPONSE: 0,
        Status.WARNING_UNDER_REVIEW: 1,
        Status.NEEDS_RESPONSE: 2,
        Status.UNDER_REVIEW: 3,
        Status.WARNING_CLOSED: 4,
        Status.WON: 4,
        Status.LOST: 4,
        Status.PREVENTED: 4,
    }
    CLOSED = (Status.WARNING_CLOSED, Status.WON, Status.LOST, Status.PREVENTED)
    # Closed without the money leaving for good: the payment is as its refunds make it.
    CLOSED_FOR_US = (Status.WARNING_CLOSED, Status.WON, Status.PREVENTED)
    AWAITING_EVIDENCE = (Status.WARNING_NEEDS_RESPONSE, Status.NEEDS_RESPONSE)

    stripe_dispute_id = models.CharField(max_length=255, unique=True)
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="disputes")
    amount = models.PositiveBigIntegerField()  # minor units
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=50, blank=True)  # Stripe's: fraudulent, general, ...
    status = models.CharField(max_length=30, choices=Status.choices)
    evidence_due_by = models.DateTimeField(null=True, blank=True)
    # Minor units Stripe took from our balance for the dispute, and gave back after a
    # won one (Stripe's dispute fee apart, in ``fees``): from ``balance_transactions``.
    funds_withdrawn = models.PositiveBigIntegerField(default=0)
    funds_reinstated = models.PositiveBigIntegerField(default=0)
    fees = models.BigIntegerField(default=0)
    # Every balance transaction seen, by id: {"id", "amount", "fee", "net", "created"}.
    balance_transactions = models.JSONField(default=list, blank=True)
    opened_at = models.DateTimeField(default=timezone.now)  # Stripe's "created"
    closed_at = models.DateTimeField(null=True, blank=True)  # when we first saw it closed
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-opened_at"]

    def __str__(self) -> str:
        shown = format_money(self.amount, self.currency)
        return f"Dispute {self.stripe_dispute_id} of {shown} ({self.get_status_display()})"

    @property
    def is_open(self) -> bool:
        return self.status not in self.CLOSED

    @property
    def is_lost(self) -> bool:
        return self.status == self.Status.LOST

    def absorb(
        self,
        *,
        status: str,
        evidence_due_by: datetime | None,
        balance_transactions: list[dict[str, Any]],
    ) -> list[str]:
        """Take what Stripe reports now, only forward; returns the steps it made (in the
        order they happened: ``funds_withdrawn``, ``updated``, ``won``/``lost``/...,
        ``funds_reinstated``), empty for a repeat or a stale report. Unsaved."""
        if status not in self.RANK:
            raise ValueError(f"unknown dispute status {status!r}")
        steps: list[str] = []
        known = {item["id"] for item in self.balance_transactions}
        new = [item for item in balance_transactions if item["id"] not in known]
        withdrawn = sum(-item["amount"] for item in new if item["amount"] < 0)
        reinstated = sum(item["amount"] for item in new if item["amount"] > 0)
        if new:
            self.balance_transactions = [*self.balance_transactions, *new]
            self.funds_withdrawn += withdrawn
            self.funds_reinstated += reinstated
            self.fees += sum(item["fee"] for item in new)
        if withdrawn:
            steps.append("funds_withdrawn")
        if self.RANK[status] > self.RANK[self.status]:
            self.status = status
            if status in self.CLOSED:
                self.closed_at = timezone.now()
            steps.append(status if status in self.CLOSED else "updated")
        stale = self.RANK[status] < self.RANK[self.status]
        if not stale and self.is_open and evidence_due_by != self.evidence_due_by:
            # Stripe may move the deadline (an inquiry escalated, a network's rules).
            self.evidence_due_by = evidence_due_by
            if "updated" not in steps:
                steps.append("updated")
        if reinstated:
            steps.append("funds_reinstated")
        return steps
