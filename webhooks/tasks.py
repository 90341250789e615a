"""Celery tasks of the webhook pipeline: processing, the sweeper, retention; and the
relay thread each worker runs (webhooks/relay.py)."""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_ready, worker_shutting_down

from webhooks import relay, retention, services

worker_ready.connect(relay.start, weak=False)
worker_shutting_down.connect(relay.stop, weak=False)


@shared_task(name="webhooks.tasks.process_event", ignore_result=True)
def process_event(pk: int) -> None:
    """Apply one stored event (idempotent: a duplicate task finds it claimed or done)."""
    services.event_process(pk=pk)


@shared_task(name="webhooks.tasks.sweep", ignore_result=True)
def sweep() -> int:
    """Periodic (beat): re-enqueue events stored but never processed."""
    return services.events_sweep()


@shared_task(name="webhooks.tasks.purge", ignore_result=True)
def purge() -> dict[str, int]:
    """The inbox's retention rules alone (payloads after 24 h, dedup keys after days);
    the hourly ``audit.purges.purge`` runs them with every other rule."""
    return retention.purge()
