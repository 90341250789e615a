"""Payments, refunds, refund approvals and disputes in the back-office, read-only.

Radar's risk level is shown and an elevated one is flagged for review (the
payment's ``needs_review``). A refund is made from its booking's page (bookings
knows the agreed policy; a payment's page links there). Refunds waiting for a
second Finance member are listed first among the approvals, where another member
approves or rejects them after stepping up. Disputes are listed with their evidence
deadline and the days left to meet it; a payment's page shows its disputes and its net
amount (paid - refunded - withdrawn + reinstated), and says why no refund can be made
while a dispute stands in the way.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from core.admin import ReadOnlyAdmin
from core.stepup import StepUpAdminMixin
from core.timezones import zoned
from payments.models import Dispute, Payment, Refund, RefundApproval
from payments.money import format_money
from payments.services import (
    APPROVE_REFUND,
    ISSUE_REFUND,
    ApprovalRefused,
    NotEnoughLeft,
    RefundRefused,
    refund_approve,
    refund_reject,
)


def refund_outcome_message(outcome: Refund | RefundApproval) -> tuple[int, str]:
    """What the person who refunded (or approved) is told: a message level and text."""
    amount = format_money(outcome.amount, outcome.payment.currency)
    if isinstance(outcome, RefundApproval):
        if outcome.status != RefundApproval.Status.PENDING:
            return messages.INFO, f"This refund of {amount} was {outcome.status} already."
        why = "beyond the agreed policy" if outcome.beyond_policy else "above the threshold"
        return (
            messages.WARNING,
            format_html(
                "The refund of {} is {}: it waits for another Finance member's approval "
                '(<a href="{}">approval {}</a>), and nothing was sent to Stripe yet.',
                amount,
                why,
                reverse("admin:payments_refundapproval_change", args=[outcome.pk]),
                outcome.pk,
            ),
        )
    if outcome.status == Refund.Status.SUCCEEDED:
        return messages.SUCCESS, f"Refunded {amount}: Stripe reports the refund succeeded."
    if outcome.status == Refund.Status.FAILED:
        return (
            messages.ERROR,
            f"Stripe refused the refund of {amount}: {outcome.last_error or 'no reason given'}.",
        )
    if outcome.last_error:
        return (
            messages.WARNING,
            f"The refund of {amount} is pending: Stripe could not be reached "
            f"({outcome.last_error}); it is retried automatically.",
        )
    return (
        messages.INFO,
        f"The refund of {amount} is {outcome.get_status_display().lower()}: Stripe has "
        "not finished it yet.",
    )


def net_summary(payment: Payment) -> str:
    """``€80.00 (paid €80.00 - refunded €0.00 - withdrawn €80.00 + reinstated €80.00)``."""
    currency = payment.currency
    totals = {"withdrawn": 0, "reinstated": 0}
    for dispute in payment.disputes.all():
        totals["withdrawn"] += dispute.funds_withdrawn
        totals["reinstated"] += dispute.funds_reinstated
    paid = payment.amount if payment.paid_at is not None else 0
    return (
        f"{format_money(payment.net_amount, currency)} (paid {format_money(paid, currency)}"
        f" - refunded {format_money(payment.succeeded_refunds(), currency)}"
        f" - withdrawn {format_money(totals['withdrawn'], currency)}"
        f" + reinstated {format_money(totals['reinstated'], currency)})"
    )


def days_left(due: Any, *, now: Any = None) -> str:
    """``3 days left``, ``less than a day left``, ``overdue by 2 days``: counted in whole
    days from this moment, not in calendar dates, so that a deadline two hours away
    never reads "1 day left" and one two hours past never reads "due today", in
    whatever zone the page shows it."""
    remaining = due - (now or timezone.now())
    if remaining.total_seconds() < 0:
        late = -remaining
        if late < timedelta(days=1):
            return "overdue by less than a day"
        days = late.days
        return f"overdue by {days} day{'s' if days != 1 else ''}"
    if remaining < timedelta(days=1):
        return "less than a day left"
    days = remaining.days
    return f"{days} day{'s' if days != 1 else ''} left"


def evidence_deadline(dispute: Dispute) -> str:
    """The evidence due date with the days left while Stripe still waits for it."""
    if dispute.evidence_due_by is None:
        return "no evidence deadline"
    when = zoned(dispute.evidence_due_by)
    if dispute.status in Dispute.AWAITING_EVIDENCE:
        return f"evidence due {when} ({days_left(dispute.evidence_due_by)})"
    if dispute.is_open:
        return f"evidence submitted (was due {when})"
    return f"closed (evidence was due {when})"


def staff_name(user: Any) -> str:
    """A staff member as colleagues know them (a name is not a client's personal data
    here: the back-office's own people), by email when they gave no name."""
    if user is None:
        return "—"
    return user.get_full_name() or user.email or str(user)


class HttpsUrlFields:
    """For a ModelAdmin: URL fields assume https (Django 6's default, and the
    providers' scheme), without Django 5's deprecation warning."""

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if isinstance(db_field, models.URLField):
            kwargs["assume_scheme"] = "https"
        return super().formfield_for_dbfield(db_field, request, **kwargs)  # type: ignore[misc]


@admin.register(Payment)
class PaymentAdmin(HttpsUrlFields, ReadOnlyAdmin):
    list_display = (
        "created_at",
        "booking",
        "shown_amount",
        "shown_status",
        "risk_level",
        "needs_review",
        "card_brand",
        "card_last4",
    )
    list_filter = ("status", "needs_review", "risk_level", "currency")
    list_select_related = ("booking",)
    # No second count of the whole table on every page (BookingAdmin says why).
    show_full_result_count = False
    search_fields = ("=checkout_session_id", "=payment_intent_id", "=charge_id")
    # Amounts as people read them, never in minor units; no Checkout URL (a link to pay).
    fields = (
        "booking",
        "shown_amount",
        "shown_tax",
        "shown_status",
        "refund_summary",
        "shown_net",
        "dispute_summary",
        "checkout_session_id",
        "payment_intent_id",
        "charge_id",
        "customer_id",
        "session_status",
        "card_brand",
        "card_last4",
        "receipt_url",
        "risk_level",
        "needs_review",
        "review_reason",
        "paid_at",
        "created_at",
    )
    readonly_fields = (
        "shown_amount",
        "shown_tax",
        "shown_status",
        "refund_summary",
        "shown_net",
        "dispute_summary",
    )

    @admin.display(description="amount")
    def shown_amount(self, obj: Payment) -> str:
        return format_money(obj.amount, obj.currency)

    @admin.display(description="tax")
    def shown_tax(self, obj: Payment) -> str:
        return format_money(obj.tax_amount, obj.currency)

    @admin.display(description="status", ordering="status")
    def shown_status(self, obj: Payment) -> str:
        """As every page says it: a bank debit on its way is "Payment processing"."""
        return obj.display_status

    @admin.display(description="refunds")
    def refund_summary(self, obj: Payment) -> str:
        refunded = sum(r.amount for r in obj.refunds.all() if r.status == Refund.Status.SUCCEEDED)
        return (
            f"{format_money(refunded, obj.currency)} refunded, "
            f"{format_money(obj.refundable(), obj.currency)} remains"
        )

    @admin.display(description="net amount")
    def shown_net(self, obj: Payment) -> str:
        """What the payment leaves with us after refunds and disputes."""
        return net_summary(obj)

    @admin.display(description="disputes")
    def dispute_summary(self, obj: Payment) -> str:
        disputes = list(obj.disputes.order_by("opened_at"))
        if not disputes:
            return "—"
        rows = format_html_join(
            "",
            '<li><a href="{}">{}</a>: {}, {}</li>',
            (
                (
                    reverse("admin:payments_dispute_change", args=[d.pk]),
                    d.stripe_dispute_id,
                    d.get_status_display(),
                    evidence_deadline(d),
                )
                for d in disputes
            ),
        )
        return format_html("<ul>{}</ul>", rows)


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "payment",
        "shown_amount",
        "status",
        "stripe_answer",
        "external",
        "requested_by_name",
    )
    list_filter = ("status", "external")
    # requested_by is nullable: the admin joins only non-null foreign keys by itself,
    # and the list shows who asked on every row.
    list_select_related = ("payment", "requested_by")
    show_full_result_count = False
    search_fields = ("=reference", "=stripe_refund_id")
    fields = (
        "payment",
        "reference",
        "shown_amount",
        "reason",
        "stripe_reason",
        "requested_by_name",
        "external",
        "stripe_refund_id",
        "status",
        "attempts",
        "last_error",
        "created_at",
        "updated_at",
    )
    readonly_fields = ("shown_amount", "requested_by_name")

    @admin.display(description="amount")
    def shown_amount(self, obj: Refund) -> str:
        return format_money(obj.amount, obj.payment.currency)

    @admin.display(description="Stripe's answer")
    def stripe_answer(self, obj: Refund) -> str:
        return obj.last_error or "—"

    @admin.display(description="requested by")
    def requested_by_name(self, obj: Refund) -> str:
        return staff_name(obj.requested_by) if obj.requested_by else "— (the client or Slotpay)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Refund]:
        return super().get_queryset(request).select_related("payment", "requested_by")


@admin.register(RefundApproval)
class RefundApprovalAdmin(StepUpAdminMixin, ReadOnlyAdmin):
    list_display = (
        "requested_at",
        "status",
        "payment",
        "shown_amount",
        "beyond_policy",
        "reason",
        "requested_by_name",
        "decided_by_name",
        "decided_at",
        "outcome",
    )
    list_filter = ("status", "beyond_policy", "currency")
    fields = (
        "payment",
        "shown_amount",
        "reason",
        "beyond_policy",
        "status",
        "requested_by_name",
        "requested_at",
        "decided_by_name",
        "decided_at",
        "outcome",
    )
    readonly_fields = ("shown_amount", "requested_by_name", "decided_by_name", "outcome")
    # Waiting ones first, newest first within each.
    ordering = (
        Case(
            When(status=RefundApproval.Status.PENDING, then=Value(0)),
            default=Value(1),
            output_field=IntegerField(),
        ).asc(),
        "-requested_at",
    )
    actions = ("approve_selected", "reject_selected")
    step_up_actions = frozenset({"approve_selected", "reject_selected"})

    @admin.display(description="amount")
    def shown_amount(self, obj: RefundApproval) -> str:
        return format_money(obj.amount, obj.currency)

    @admin.display(description="requested by")
    def requested_by_name(self, obj: RefundApproval) -> str:
        return staff_name(obj.requested_by)

    @admin.display(description="decided by")
    def decided_by_name(self, obj: RefundApproval) -> str:
        return staff_name(obj.decided_by)

    @admin.display(description="refund")
    def outcome(self, obj: RefundApproval) -> str:
        if obj.refund is None:
            return "—"
        answer = f" ({obj.refund.last_error})" if obj.refund.last_error else ""
        return f"{obj.refund.get_status_display()}{answer}"

    def get_queryset(self, request: HttpRequest) -> QuerySet[RefundApproval]:
        return (
            super()
            .get_queryset(request)
            .select_related("refund", "payment", "requested_by", "decided_by")
        )

    def has_approve_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(APPROVE_REFUND)

    def has_decide_refund_permission(self, request: HttpRequest) -> bool:
        """Reject: an approver, or a requester withdrawing their own."""
        return request.user.has_perm(APPROVE_REFUND) or request.user.has_perm(ISSUE_REFUND)

    @admin.action(permissions=["approve_refund"], description="Approve and refund")
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[RefundApproval]) -> None:
        for approval in queryset.order_by("pk"):
            try:
                refund = refund_approve(approval_id=approval.pk, actor=request.user)  # type: ignore[arg-type]
            except (ApprovalRefused, RefundRefused) as exc:
                why = exc.shown if isinstance(exc, NotEnoughLeft) else str(exc)
                self.message_user(request, f"Approval {approval.pk}: {why}", messages.ERROR)
                continue
            level, text = refund_outcome_message(refund)
            self.message_user(request, f"Approval {approval.pk}: {text}", level)

    @admin.action(permissions=["decide_refund"], description="Reject (nothing is refunded)")
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[RefundApproval]) -> None:
        for approval in queryset.order_by("pk"):
            try:
                refund_reject(approval_id=approval.pk, actor=request.user)  # type: ignore[arg-type]
            except (ApprovalRefused, PermissionDenied) as exc:
                self.message_user(request, f"Approval {approval.pk}: {exc}", messages.ERROR)
                continue
            self.message_user(
                request, f"Approval {approval.pk}: rejected; nothing was refunded.", messages.INFO
            )


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyAdmin):
    """Disputes as Stripe last reported them (each step in the audit log): answered in
    the Stripe dashboard, followed here. Finance and Support read them."""

    list_display = (
        "opened",
        "stripe_dispute_id",
        "payment_link",
        "shown_amount",
        "status",
        "reason",
        "evidence_due",
        "shown_withdrawn",
        "shown_reinstated",
    )
    list_filter = ("status", "reason", "currency")
    search_fields = ("=stripe_dispute_id", "=payment__charge_id", "=payment__payment_intent_id")
    fields = (
        "stripe_dispute_id",
        "payment_link",
        "shown_amount",
        "status",
        "reason",
        "evidence_due",
        "shown_withdrawn",
        "shown_reinstated",
        "shown_fees",
        "payment_net",
        "opened",
        "closed",
    )
    readonly_fields = fields

    @admin.display(description="opened", ordering="opened_at")
    def opened(self, obj: Dispute) -> str:
        return zoned(obj.opened_at)

    @admin.display(description="closed", ordering="closed_at")
    def closed(self, obj: Dispute) -> str:
        return zoned(obj.closed_at)

    @admin.display(description="payment", ordering="payment")
    def payment_link(self, obj: Dispute) -> str:
        return format_html(
            '<a href="{}">Payment {}</a>',
            reverse("admin:payments_payment_change", args=[obj.payment_id]),
            obj.payment_id,
        )

    @admin.display(description="amount", ordering="amount")
    def shown_amount(self, obj: Dispute) -> str:
        return format_money(obj.amount, obj.currency)

    @admin.display(description="evidence due", ordering="evidence_due_by")
    def evidence_due(self, obj: Dispute) -> str:
        return evidence_deadline(obj)

    @admin.display(description="withdrawn")
    def shown_withdrawn(self, obj: Dispute) -> str:
        return format_money(obj.funds_withdrawn, obj.currency)

    @admin.display(description="reinstated")
    def shown_reinstated(self, obj: Dispute) -> str:
        return format_money(obj.funds_reinstated, obj.currency)

    @admin.display(description="Stripe's dispute fees")
    def shown_fees(self, obj: Dispute) -> str:
        return format_money(obj.fees, obj.currency)

    @admin.display(description="payment's net amount")
    def payment_net(self, obj: Dispute) -> str:
        return net_summary(obj.payment)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Dispute]:
        return super().get_queryset(request).select_related("payment")
