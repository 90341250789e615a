"""slotpay.W006: a recovery that takes work over before that work can have ended, or
that resends a refund after Stripe has forgotten its idempotency key."""

from __future__ import annotations

from config.checks import check_recovery_timings
from payments.checks import check_refund_timings


def test_the_defaults_outlast_what_they_take_over() -> None:
    assert check_recovery_timings() == []
    assert check_refund_timings() == []


def test_each_timeout_too_short_is_named(settings) -> None:
    settings.WEBHOOK_PROCESSING_TIMEOUT_SECONDS = settings.CELERY_TASK_TIME_LIMIT
    settings.OUTBOX_REDELIVER_AFTER_SECONDS = 60
    settings.REFUND_SUBMIT_LEASE_SECONDS = 20

    warnings = check_recovery_timings() + check_refund_timings()

    assert {warning.id for warning in warnings} == {"slotpay.W006"}
    named = [warning.msg.split(" ", 1)[0] for warning in warnings]
    assert named == [
        "WEBHOOK_PROCESSING_TIMEOUT_SECONDS",
        "OUTBOX_REDELIVER_AFTER_SECONDS",
        "REFUND_SUBMIT_LEASE_SECONDS",
    ]
    assert "longest Stripe call" in warnings[2].msg


def test_a_refund_resend_must_stay_within_stripes_idempotency_window(settings) -> None:
    settings.REFUND_RETRY_INTERVAL_SECONDS = 0
    assert "above 0" in check_refund_timings()[0].msg

    settings.REFUND_RETRY_INTERVAL_SECONDS = 300
    settings.REFUND_SUBMIT_LEASE_SECONDS = 50_000
    [warning] = check_refund_timings()
    assert warning.id == "slotpay.W006"
    assert "idempotency window (now 50300 s)" in warning.msg
