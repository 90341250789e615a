"""Celery tasks every app uses: the outbox's relay and purge, sending an email, and
the watchdogs' pass."""

from __future__ import annotations

import logging

from celery import shared_task
from django.core.mail import send_mail as django_send_mail

from core import alerts, outbox

logger = logging.getLogger(__name__)


@shared_task(name="core.tasks.relay_outbox", ignore_result=True)
def relay_outbox() -> int:
    """Beat: publish outbox rows the fast path could not (broker down, process died)."""
    return outbox.relay()


@shared_task(name="core.tasks.run_outbox", ignore_result=True)
def run_outbox(pk: int, publish_id: str) -> bool:
    """One outbox row's task, if this message is its current publish (core/outbox.py)."""
    return outbox.run(pk, publish_id)


@shared_task(name="core.tasks.purge_outbox", ignore_result=True)
def purge_outbox() -> int:
    return outbox.purge()


@shared_task(
    name="core.tasks.send_mail",
    ignore_result=True,
    autoretry_for=(OSError,),
    retry_backoff=30,
    max_retries=8,
)
def send_mail(kind: str, subject: str, body: str, to: list[str]) -> None:
    """One email; a mail server that is down is retried with backoff. Never logs the
    addresses or the text."""
    django_send_mail(subject, body, None, to)
    logger.info("notify.sent", extra={"kind": kind, "recipients": len(to)})


@shared_task(name="core.tasks.run_watchdogs", ignore_result=True)
def run_watchdogs() -> int:
    """Beat, every five minutes: each watchdog raises what is wrong and clears what is
    no longer (core/alerts.py). Returns how many alerts opened."""
    outcome = alerts.run_watchdogs()
    logger.info(
        "alert.watchdogs_ran",
        extra={
            "raised": len(outcome.raised),
            "cleared": len(outcome.cleared),
            "failed": len(outcome.failed),
        },
    )
    return len(outcome.raised)
