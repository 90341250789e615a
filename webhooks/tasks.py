"""Celery tasks of the webhook pipeline: processing, the sweeper, retention."""

from __future__ import annotations

from celery import shared_task

from webhooks import retention, services


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
