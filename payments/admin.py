"""Payments and refunds in the back-office, read-only: Radar's risk level is shown and
an elevated one is flagged for review (the payment's ``needs_review``)."""

from __future__ import annotations

from django.contrib import admin

from core.admin import ReadOnlyAdmin
from payments.models import Payment, Refund
from payments.money import format_money


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
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
    search_fields = ("=checkout_session_id", "=payment_intent_id", "=charge_id")
    exclude = ("checkout_url",)

    @admin.display(description="amount")
    def shown_amount(self, obj: Payment) -> str:
        return format_money(obj.amount, obj.currency)

    @admin.display(description="status", ordering="status")
    def shown_status(self, obj: Payment) -> str:
        """As every page says it: a bank debit on its way is "Payment processing"."""
        return obj.display_status


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "payment", "amount", "status", "external", "requested_by")
    list_filter = ("status", "external")
    search_fields = ("=reference", "=stripe_refund_id")
