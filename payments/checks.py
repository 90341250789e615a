"""System checks for the payments settings (imported by payments/models.py)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

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


STRIPE_IDEMPOTENCY_WINDOW = 86_400  # seconds Stripe remembers an idempotency key


@register(Tags.compatibility)
def check_refund_timings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The refund's lease must outlast the longest Stripe call (or a live call may be
    sent again beside it), and a refund sent again must reach Stripe while its
    idempotency key is remembered (24 hours), or a lost answer could turn into a second
    refund (slotpay.W006, with config.checks.check_recovery_timings)."""
    from payments import stripe_gateway

    stripe_call = stripe_gateway.TIMEOUT[0] + stripe_gateway.TIMEOUT[1]
    longest_call = stripe_call * (stripe_gateway.MAX_NETWORK_RETRIES + 1)
    lease, interval = settings.REFUND_SUBMIT_LEASE_SECONDS, settings.REFUND_RETRY_INTERVAL_SECONDS
    warnings: list[CheckMessage] = []
    if lease <= longest_call:
        warnings.append(
            Warning(
                f"REFUND_SUBMIT_LEASE_SECONDS is {lease} s, not more than the longest Stripe "
                f"call (timeouts and retries, {longest_call} s): work still running may be "
                "taken over and done twice.",
                hint=f"Set REFUND_SUBMIT_LEASE_SECONDS above {longest_call}.",
                id="slotpay.W006",
            )
        )
    if interval <= 0 or lease + interval >= STRIPE_IDEMPOTENCY_WINDOW / 2:
        warnings.append(
            Warning(
                "REFUND_RETRY_INTERVAL_SECONDS must be above 0, and it and "
                "REFUND_SUBMIT_LEASE_SECONDS together well under Stripe's 24-hour "
                f"idempotency window (now {lease + interval} s).",
                hint="Keep the defaults (300 and 180).",
                id="slotpay.W006",
            )
        )
    return warnings
