"""A stand-in domain handler, registered only in processes running ``bench.settings``.

The webhooks app imports every installed app's ``webhook_handlers`` module at start-up;
``bench.settings`` installs this package last, so it takes the place of the bookings
app's handler in gunicorn (which then stores the event type) and in the Celery worker
(which then applies it): the bench measures the pipeline, not the booking logic.

Its one effect is an audit entry ``bench.handled`` naming the event, written in the
handler's transaction: the entries tell how many times each event was applied, and
an attempt whose worker dies mid-way leaves none (its transaction rolls back).

``data.object.metadata.bench_sleep`` (seconds) makes the FIRST attempt sleep after
writing its effect, while the transaction (and the audit chain's lock) is held, so a
test can kill the worker in the middle of a task. Later attempts do not sleep.
"""

from __future__ import annotations

import time

import audit
from webhooks.registry import Event, registry

HANDLED_ACTION = "bench.handled"


def checkout_completed(event: Event) -> None:
    audit.record(
        HANDLED_ACTION,
        category=audit.Category.TRANSACTION,
        actor="bench",
        data={"event_id": event.event_id, "attempt": event.attempt},
    )
    metadata = event.data["data"]["object"].get("metadata") or {}
    pause = float(metadata.get("bench_sleep") or 0)
    if pause and event.attempt == 1:
        time.sleep(pause)


registry.unregister("stripe", "checkout.session.completed")
registry.register("stripe", "checkout.session.completed", checkout_completed)
