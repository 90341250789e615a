"""System checks for the payments settings (imported by payments/models.py)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from payments.thresholds import Threshold, ThresholdError


@register()
def check_refund_approval_threshold(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        Threshold.parse(settings.REFUND_APPROVAL_THRESHOLD)
    except ThresholdError as exc:
        return [
            Error(
                f"REFUND_APPROVAL_THRESHOLD is malformed: {exc}.",
                hint='For example "eur=10000,usd=10000,jpy=15000" or "eur=10000,50%".',
                id="payments.E001",
            )
        ]
    return []
