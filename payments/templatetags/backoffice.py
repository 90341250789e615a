"""Money as staff read it on the back-office's own pages:
``{{ amount|money:currency }}`` → ``€80.00`` (minor units in, as payments store them).
``{{ payment|refund_refusal }}``: why a dispute forbids refunding it ("" if none), for
the refund buttons. Times: ``core``'s ``zoned`` filter (``{% load zones %}``)."""

from __future__ import annotations

from django import template

from payments.models import Payment
from payments.money import format_money
from payments.services import dispute_refusal

register = template.Library()


@register.filter
def money(amount: int | None, currency: str) -> str:
    if amount is None or not currency:
        return "—"
    return format_money(amount, currency)


@register.filter
def refund_refusal(payment: Payment | None) -> str:
    if payment is None:
        return ""
    return dispute_refusal(payment) or ""


@register.filter
def refundable(payment: Payment | None) -> bool:
    """Paid and not wholly refunded: what a Refund button may lead to (an open or
    expired Checkout has nothing to refund, and its booking's refund page is a 404)."""
    return payment is not None and payment.status in Payment.REFUNDABLE
