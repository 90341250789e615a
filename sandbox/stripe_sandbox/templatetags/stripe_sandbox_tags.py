from __future__ import annotations

from datetime import UTC, datetime

from django import template

from sandbox.stripe_sandbox.money import format_amount

register = template.Library()


@register.filter
def money(minor: int | None, currency: str | None) -> str:
    return format_amount(minor, currency)


@register.filter
def unix(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value is not None else None
