"""Periodic payment work (beat)."""

from __future__ import annotations

from celery import shared_task
from django.contrib.auth import get_user_model

from payments import services
from payments.models import Refund


@shared_task(name="payments.tasks.retry_unfinished_refunds", ignore_result=True)
def retry_unfinished_refunds() -> int:
    """Every few minutes: refunds left pending by an outage are sent again (same key)."""
    return services.refund_retry_unfinished()


@shared_task(name="payments.tasks.submit_refund", ignore_result=True)
def submit_refund(refund_pk: int, user_pk: int | None = None, label: str = "payments") -> None:
    """A refund decided inside a transaction (a webhook handler), sent after its commit."""
    refund = Refund.objects.select_related("payment").get(pk=refund_pk)
    actor = get_user_model().objects.filter(pk=user_pk).first() if user_pk else label
    services.refund_submit(refund=refund, actor=actor or label)
