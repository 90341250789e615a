"""Money and times as staff read them on the back-office's own pages.

``{{ amount|money:currency }}`` → ``€80.00`` (minor units in, as payments store them);
``{{ when|zoned }}`` → ``2026-11-30 19:11 Asia/Tokyo``: in the zone the admin renders
in (the viewer's, UTC if they chose none), named, as every time shown must be.
"""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone

from payments.money import format_money

register = template.Library()


@register.filter
def money(amount: int | None, currency: str) -> str:
    if amount is None or not currency:
        return "—"
    return format_money(amount, currency)


@register.filter
def zoned(value: datetime | None) -> str:
    if value is None:
        return "—"
    zone = timezone.get_current_timezone()
    return f"{timezone.localtime(value, zone):%Y-%m-%d %H:%M} {zone}"
