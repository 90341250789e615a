"""Money as staff read it on the back-office's own pages:
``{{ amount|money:currency }}`` → ``€80.00`` (minor units in, as payments store them).
Times: ``core``'s ``zoned`` filter (``{% load zones %}``)."""

from __future__ import annotations

from django import template

from payments.money import format_money

register = template.Library()


@register.filter
def money(amount: int | None, currency: str) -> str:
    if amount is None or not currency:
        return "—"
    return format_money(amount, currency)
