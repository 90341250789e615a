"""Periodic payment work (beat)."""

from __future__ import annotations

from celery import shared_task

from payments import services


@shared_task(name="payments.tasks.retry_unfinished_refunds", ignore_result=True)
def retry_unfinished_refunds() -> int:
    """Every few minutes: refunds left pending by an outage are sent again (same key)."""
    return services.retry_unfinished_refunds()
