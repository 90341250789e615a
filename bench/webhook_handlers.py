"""A stand-in domain handler, registered only in processes running ``bench.settings``.

The webhooks app imports every installed app's ``webhook_handlers`` module at start-up;
``bench.settings`` installs this package last, so it takes the place of the bookings
app's handler in gunicorn (which then stores the event type) and in the Celery worker
(which then applies it): the bench measures the pipeline, not the booking logic.

Shaped as the registry's contract asks of a real handler: first the slow part with
no transaction open (a real handler asks Stripe; this one may sleep), then one short
transaction that writes the effect idempotently. The effect is an audit entry
``bench.handled`` naming the event, written once per event whatever the attempts:
the entries tell how many times each event was applied.

``data.object.metadata.bench_sleep`` (seconds) makes the FIRST attempt sleep before
writing, as a slow provider would make it wait, so that a test can kill the worker in
the middle of a task, or watch the other worker go on meanwhile. Later attempts do
not sleep.
"""

from __future__ import annotations

import time

from django.db import transaction

import audit
from audit.models import AuditEntry
from webhooks.models import WebhookEvent
from webhooks.registry import Event, registry

HANDLED_ACTION = "bench.handled"


def checkout_completed(event: Event) -> None:
    metadata = event.data["data"]["object"].get("metadata") or {}
    pause = float(metadata.get("bench_sleep") or 0)
    if pause and event.attempt == 1:
        time.sleep(pause)  # the provider's answer, awaited with no transaction open
    with transaction.atomic():
        # The inbox row's lock orders two attempts of the same event (a takeover).
        WebhookEvent.objects.select_for_update().filter(pk=event.pk).first()
        target = ("webhooks.webhookevent", event.pk)
        done = AuditEntry.objects.filter(
            action=HANDLED_ACTION, target_type=target[0], target_id=str(target[1])
        )
        if done.exists():
            return
        audit.record(
            HANDLED_ACTION,
            category=audit.Category.TRANSACTION,
            actor="bench",
            target=target,
            data={"event_id": event.event_id, "attempt": event.attempt},
        )


registry.unregister("stripe", "checkout.session.completed")
registry.register("stripe", "checkout.session.completed", checkout_completed)
