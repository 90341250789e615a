"""After-commit work that survives a broker outage, a killed worker and an emptied
Redis: one transactional outbox.

``enqueue(task, *args)`` writes an :class:`~core.models.OutboxMessage` inside the
caller's transaction, so the task exists exactly when the change that needs it does.
After the commit a fast path publishes it at once; if the broker is down (or the
process dies first), the relay, run by beat every few seconds, publishes whatever is
still unsent.

What goes to the broker is ``core.tasks.run_outbox(pk, publish_id)``, never the
task's arguments (an email's text and address stay encrypted in the row). The worker
runs the row's task only if the row is not done and the message is its current
publish (``publish_id``), then marks it done. A task that raises is sent again with
backoff by the outbox itself, up to MAX_ATTEMPTS, then given up and logged as an
error. A row sent OUTBOX_REDELIVER_AFTER_SECONDS ago and still not done is published
again under a new ``publish_id``: its message died with a worker killed mid-task
(acknowledged late, Redis hands it back only after its visibility timeout, an hour)
or with a Redis that restarted empty. A copy that turns up later (Redis restoring
it, a backlog that outlasted the window) finds the row done or its publish replaced,
and does nothing; so a task runs more than once only if it was killed mid-run (or
outlasted the window while running), and every outbox task must still be
idempotent. Most look at the database to see whether their work is done.

The webhook inbox needs no outbox: its row is the durable record, and its sweeper is
its relay (webhooks/services.py).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Collection
from datetime import datetime, timedelta
from importlib import import_module
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from core.models import OutboxMessage

logger = logging.getLogger(__name__)

# A row claimed for publishing this long ago by a process that never marked it sent
# (it died between the two) is published again.
CLAIM_TIMEOUT = timedelta(seconds=60)
# After this many attempts (publishes, runs that raised, redeliveries) a row is given
# up, logged as an error and kept GIVEN_UP_KEPT for a person to look at.
MAX_ATTEMPTS = 50
GIVEN_UP_KEPT = timedelta(days=30)
# A task that raised is sent again after 30 s, 1 min, 2 min, ... at most an hour apart.
RETRY_BASE = timedelta(seconds=30)
RETRY_CAP = timedelta(hours=1)
RUN_TASK = "core.tasks.run_outbox"
TASK_ID_PREFIX = "outbox:"


def enqueue(
    task: str,
    *args: Any,
    dedup_key: str | None = None,
    countdown: float | None = None,
    **kwargs: Any,
) -> OutboxMessage | None:
    """Publish ``task(*args, **kwargs)`` once the current transaction commits.

    Arguments must be JSON. With ``dedup_key``, a second enqueue of the same work is
    ignored (returns None). Outside a transaction the row is committed at once and
    published straight away.
    """
    now = timezone.now()
    fields = {
        "task": task,
        "payload": json.dumps({"args": list(args), "kwargs": kwargs}),
        "dedup_key": dedup_key,
        "available_at": now + timedelta(seconds=countdown or 0),
    }
    try:
        with transaction.atomic():
            message = OutboxMessage.objects.create(**fields)
    except IntegrityError:
        if dedup_key and OutboxMessage.objects.filter(dedup_key=dedup_key).exists():
            return None
        raise
    if not countdown:
        pk = message.pk
        transaction.on_commit(lambda: publish(pk), robust=True)
    return message


def publish(pk: int) -> bool:
    """Claim one row and hand it to Celery; False if it is not ours to send now (done
    or in flight, claimed by another process, not due) or the broker refused it."""
    now = timezone.now()
    publish_id = uuid.uuid4().hex
    claimed = (
        _due(now)
        .filter(pk=pk)
        .update(attempts=F("attempts") + 1, available_at=now, sent_at=None, publish_id=publish_id)
    )
    if not claimed:
        return False
    try:
        _task(RUN_TASK).apply_async(
            args=[pk, publish_id], task_id=f"{TASK_ID_PREFIX}{pk}:{publish_id}", retry=False
        )
    except Exception as exc:  # noqa: BLE001 (whatever the broker raised: the relay retries)
        message = OutboxMessage.objects.get(pk=pk)
        OutboxMessage.objects.filter(pk=pk, publish_id=publish_id).update(
            last_error=type(exc).__name__[:300]
        )
        log = logger.error if message.attempts >= MAX_ATTEMPTS else logger.warning
        log(
            "outbox.publish_failed",
            extra={
                "outbox": pk,
                "task": message.task,
                "error": type(exc).__name__,
                "attempt": message.attempts,
            },
        )
        return False
    # Not if the run (in-process, or a fast worker) already failed and released it.
    OutboxMessage.objects.filter(pk=pk, publish_id=publish_id).update(sent_at=timezone.now())
    return True


def run(pk: int, publish_id: str) -> bool:
    """The worker's side (core.tasks.run_outbox): run the row's task if this message
    is the row's current publish and the row is not done; True when it ran to an end.
    A task that raises is released for the relay to send again after a backoff."""
    message = OutboxMessage.objects.filter(pk=pk).first()
    if message is None or message.done_at is not None or message.publish_id != publish_id:
        # Done, replaced by a later publish, or deleted (purged, or erased with its
        # person's data): a stale copy of the message.
        logger.info("outbox.stale_copy", extra={"outbox": pk})
        return False
    payload = json.loads(message.payload)
    try:
        _task(message.task)(*payload["args"], **payload["kwargs"])
    except Exception as exc:  # noqa: BLE001 (any failure is retried, then given up)
        _release(message, exc)
        return False
    OutboxMessage.objects.filter(pk=pk, done_at__isnull=True).update(
        done_at=timezone.now(), last_error=""
    )
    return True


def _release(message: OutboxMessage, exc: Exception) -> None:
    delay = min(RETRY_CAP, RETRY_BASE * 2 ** min(max(0, message.attempts - 1), 16))
    released = OutboxMessage.objects.filter(
        pk=message.pk, publish_id=message.publish_id, done_at__isnull=True
    ).update(
        publish_id="",
        sent_at=None,
        available_at=timezone.now() + delay,
        last_error=type(exc).__name__[:300],
    )
    # Not given up if this run's publish was replaced meanwhile (a redelivery, a retry
    # by hand): the row is the newer publish's now.
    given_up = bool(released) and message.attempts >= MAX_ATTEMPTS
    log = logger.error if given_up else logger.warning
    log(
        "outbox.given_up" if given_up else "outbox.task_failed",
        extra={
            "outbox": message.pk,
            "task": message.task,
            "error": type(exc).__name__,
            "attempt": message.attempts,
            "retry_in": int(delay.total_seconds()) if released and not given_up else None,
        },
    )


def _task(name: str) -> Any:
    """The task registered under ``name``, importing its module first: a web process
    has not necessarily imported every app's tasks (our tasks are named by path)."""
    if name not in current_app.tasks:
        import_module(name.rsplit(".", 1)[0])
    if name not in current_app.tasks:
        # A task kept under an old name in another module (renamed, aliased).
        current_app.loader.import_default_modules()
    return current_app.tasks[name]


def relay(*, limit: int = 200) -> int:
    """Beat: publish what is due and unsent (the broker was down, a process died, a
    run failed and its backoff is over) and what was sent but never ran to an end
    (its message was lost). Returns how many were published."""
    due = _due(timezone.now()).order_by("available_at", "pk").values_list("pk", flat=True)[:limit]
    sent = sum(publish(pk) for pk in list(due))
    if sent:
        logger.info("outbox.relayed", extra={"sent": sent})
    return sent


def _due(now: datetime) -> QuerySet[OutboxMessage]:
    """Not done and not given up; and unsent, due and not claimed by a publisher that
    may still be at work, or published so long ago that its message is taken to be
    lost. (A row sent by a release before publish ids has none, and is left alone.)"""
    unsent = Q(sent_at__isnull=True, available_at__lte=now) & (
        Q(attempts=0) | Q(available_at__lte=now - CLAIM_TIMEOUT)
    )
    return OutboxMessage.objects.filter(done_at__isnull=True, attempts__lt=MAX_ATTEMPTS).filter(
        unsent | _message_lost(now)
    )


def _message_lost(now: datetime) -> Q:
    """Published OUTBOX_REDELIVER_AFTER_SECONDS ago and never run to an end (a row sent
    by a release before publish ids has none, and is never taken to be lost)."""
    lost = now - timedelta(seconds=settings.OUTBOX_REDELIVER_AFTER_SECONDS)
    return Q(sent_at__lte=lost) & ~Q(publish_id="")


def given_up(now: datetime | None = None) -> QuerySet[OutboxMessage]:
    """Rows no longer sent: they failed MAX_ATTEMPTS times (core/watchdogs.py alerts).

    Only rows with nothing in flight: their last run raised (released), their last
    publish died before it was sent, or its message is taken to be lost. A row whose
    last attempt a worker may still be running is not given up until that ends.
    """
    now = now or timezone.now()
    failed = Q(publish_id="", sent_at__isnull=True)
    publish_died = Q(sent_at__isnull=True, available_at__lte=now - CLAIM_TIMEOUT)
    return OutboxMessage.objects.filter(done_at__isnull=True, attempts__gte=MAX_ATTEMPTS).filter(
        failed | publish_died | _message_lost(now)
    )


def retry_given_up(*, task: str | None = None, ids: Collection[int] = ()) -> dict[str, int]:
    """Send the given-up rows (of ``task``, of ``ids``, or all) again from a first
    attempt, once the cause is fixed (``manage.py outbox_retry``). One UPDATE, whose
    condition is checked again on each row as it is written: a row a worker took up
    meanwhile is left alone. Returns how many of each task were released."""
    rows = given_up()
    if task:
        rows = rows.filter(task=task)
    if ids:
        rows = rows.filter(pk__in=ids)
    with transaction.atomic():
        released = list(
            rows.select_for_update(skip_locked=True).order_by("pk").values_list("pk", "task")
        )
        OutboxMessage.objects.filter(pk__in=[pk for pk, _ in released]).update(
            attempts=0, publish_id="", sent_at=None, available_at=timezone.now(), last_error=""
        )
    counts: dict[str, int] = {}
    for _, name in released:
        counts[name] = counts.get(name, 0) + 1
    if released:
        logger.warning("outbox.retried", extra={"rows": len(released), "tasks": counts})
    return counts


def pending_count() -> int:
    """Rows not done yet: waiting to be sent, or sent and not run to an end."""
    return (
        OutboxMessage.objects.filter(done_at__isnull=True)
        .exclude(publish_id="", sent_at__isnull=False)
        .count()
    )


def purge(*, older_than: timedelta = timedelta(days=1)) -> int:
    """Done rows are kept a day (for looking into a problem), then deleted; so are
    rows sent by a release before publish ids. Rows given up are kept GIVEN_UP_KEPT."""
    now = timezone.now()
    cutoff = now - older_than
    deleted = 0
    for rows in (
        OutboxMessage.objects.filter(done_at__lte=cutoff),
        OutboxMessage.objects.filter(publish_id="", sent_at__lte=cutoff),
        given_up().filter(created_at__lte=now - GIVEN_UP_KEPT),
    ):
        deleted += rows.delete()[0]
    return deleted
