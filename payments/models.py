"""Payments for bookings and their refunds: Stripe's ids only, never card data.

A payment's refund status (``partially_refunded``, ``refunded``) follows from its
succeeded refunds (:meth:`Payment.reconcile_refunds`); every status change is audited.
"""

from __future__ import annotations

import uuid

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
        DISPUTED = "disputed", "Disputed"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired"

    REFUNDABLE = (Status.PAID, Status.PARTIALLY_REFUNDED)

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
        succeeded = (
            self.refunds.filter(status=Refund.Status.SUCCEEDED).aggregate(total=Sum("amount"))[
                "total"
            ]
            or 0
        )
        if succeeded >= self.amount:
            status = self.Status.REFUNDED
        elif succeeded:
            status = self.Status.PARTIALLY_REFUNDED
        else:
            status = self.Status.PAID
        return self.set_status(status, actor=actor, reason=f"refunded {succeeded} of {self.amount}")


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
