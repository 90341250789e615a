"""The inbox is its own outbox: the worker publishes what the endpoint stored.

The endpoint's 200 means "stored": one INSERT, committed. It never talks to the
broker, so a Redis outage or a slow publish is invisible to Stripe and Calendly, and
the acknowledgement costs one durable write (bench/webhook_ingest.py measures how
close it is to that limit). A row the endpoint stored has no ``enqueued_at``; a relay
thread in every Celery worker's main process claims such rows in batches (``FOR
UPDATE SKIP LOCKED``, so several workers' relays never publish the same row),
notes ``enqueued_at``, commits, and only then publishes their tasks: no broker call
is made with a transaction open. A publish that fails clears ``enqueued_at`` of what
was not sent, and the relay tries again after a pause; the sweeper
(``services.events_sweep``) stays the backstop for a relay that is not running.

With tasks run in-process (development without Redis, the unit tests) there is no
worker: the endpoint processes the event after its commit, as before.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

from webhooks.models import WebhookEvent

logger = logging.getLogger("slotpay.webhooks")

BATCH = 500
# After a failure (the broker or the database down), wait this long, doubling to the cap.
PAUSE_SECONDS = 0.5
PAUSE_CAP_SECONDS = 5.0


class PublishFailed(Exception):  # noqa: N818 (an outcome the loop handles)
    """The broker refused a publish; the rows not sent were handed back."""


def unrelayed() -> QuerySet[WebhookEvent]:
    """Rows the endpoint stored that no task was published for yet."""
    return WebhookEvent.objects.filter(
        status=WebhookEvent.Status.RECEIVED, enqueued_at__isnull=True
    )


def relay_once(*, limit: int = BATCH) -> int:
    """Claim up to ``limit`` stored rows, commit, publish their tasks; how many were
    published. Raises PublishFailed (after handing back the rest) when the broker fails.
    """
    from webhooks.tasks import process_event

    now = timezone.now()
    with transaction.atomic():
        pks = list(
            unrelayed()
            .select_for_update(skip_locked=True)
            .order_by("pk")
            .values_list("pk", flat=True)[:limit]
        )
        if not pks:
            return 0
        WebhookEvent.objects.filter(pk__in=pks).update(enqueued_at=now)
    for index, pk in enumerate(pks):
        try:
            process_event.apply_async((pk,), retry=False)
        except (BrokerError, RedisError, OSError) as exc:
            WebhookEvent.objects.filter(pk__in=pks[index:], enqueued_at=now).update(
                enqueued_at=None
            )
            raise PublishFailed(f"{type(exc).__name__} after {index} of {len(pks)}") from exc
    return len(pks)


class Relay(threading.Thread):
    """``relay_once`` in a loop: at once again after a full batch, every
    WEBHOOK_RELAY_INTERVAL_SECONDS otherwise, with a growing pause after failures."""

    def __init__(self) -> None:
        super().__init__(name="webhooks-relay", daemon=True)
        self._stop_requested = threading.Event()
        self._failures = 0

    def stop(self, timeout: float = 5.0) -> None:
        self._stop_requested.set()
        self.join(timeout)

    def run(self) -> None:
        interval = float(settings.WEBHOOK_RELAY_INTERVAL_SECONDS)
        wait = 0.0
        try:
            while not self._stop_requested.wait(wait):
                wait = self.step(interval)
        finally:
            connection.close()

    def step(self, interval: float) -> float:
        """One round; returns how long to wait before the next."""
        try:
            sent = relay_once()
        except Exception as exc:  # noqa: BLE001 (nothing may end the relay: logged, retried)
            self._failures += 1
            if self._failures == 1:  # once per outage, not every round
                expected = isinstance(exc, PublishFailed | DatabaseError)
                log = logger.warning if expected else logger.exception
                log("webhooks.relay_failed", extra={"error": str(exc)[:200]})
            if isinstance(exc, DatabaseError) and not connection.in_atomic_block:
                # The connection may be broken (PostgreSQL restarted): a new one next time.
                connection.close()
            return self._pause()
        if self._failures:
            if not sent:
                # Nothing to publish (another worker's relay took the rows) says
                # nothing of the broker: still out, as far as this relay knows.
                return self._pause()
            logger.info("webhooks.relay_recovered", extra={"failures": self._failures})
            self._failures = 0
        return 0.0 if sent >= BATCH else interval

    def _pause(self) -> float:
        return float(min(PAUSE_CAP_SECONDS, PAUSE_SECONDS * 2.0 ** (self._failures - 1)))


_running: list[Relay] = []  # this process's relay, once started


def start(**_: Any) -> None:
    """Celery's ``worker_ready``: start this worker's relay (not with in-process tasks)."""
    from celery import current_app

    if current_app.conf.task_always_eager or not settings.WEBHOOK_RELAY_ENABLED:
        return
    if not any(relay.is_alive() for relay in _running):
        _running[:] = [Relay()]
        _running[0].start()
        logger.info("webhooks.relay_started")


def stop(**_: Any) -> None:
    """Celery's ``worker_shutting_down``."""
    for relay in _running:
        relay.stop()
