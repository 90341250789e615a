"""After-commit work that survives a broker outage: one transactional outbox.

``enqueue(task, *args)`` writes an :class:`~core.models.OutboxMessage` inside the
caller's transaction, so the task exists exactly when the change that needs it does.
After the commit a fast path publishes it at once; if the broker is down (or the
process dies first), the relay, run by beat every few seconds, publishes whatever is
still unsent.

A row is done when its task has run to an end in a worker (returned, raised, or
handed itself to Celery's retry): the task's id names the row, and the worker's
``task_postrun`` signal marks it. A row sent but not done after
``OUTBOX_REDELIVER_AFTER_SECONDS`` is published again: its message died with a
worker killed mid-task (acknowledged late, Redis hands it back only after its
visibility timeout, an hour) or with a Redis that restarted empty. Delivery is at
least once: every task enqueued here must be idempotent, and most look at the
database to see whether their work is done.

The webhook inbox needs no outbox: its row is the durable record, and its sweeper is
its relay (webhooks/services.py).
"""

from __future__ import annotations

import json
import logging
import uuid
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
# After this many failed publishes a row is left for a person (logged as an error):
# with tasks run in-process (development), a task that always fails would otherwise
# be tried forever.
MAX_ATTEMPTS = 50


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


TASK_ID_PREFIX = "outbox:"


def publish(pk: int) -> bool:
    """Claim one row and hand its task to Celery; False if it is not ours to send now
    (done or in flight, claimed by another process, not due) or the broker refused it."""
    now = timezone.now()
    claimed = (
        _due(now).filter(pk=pk).update(attempts=F("attempts") + 1, available_at=now, sent_at=None)
    )
    if not claimed:
        return False
    message = OutboxMessage.objects.get(pk=pk)
    payload = json.loads(message.payload)
    try:
        _task(message.task).apply_async(
            args=payload["args"],
            kwargs=payload["kwargs"],
            # Unique per publish; the row's id is what the worker's signal reads.
            task_id=f"{TASK_ID_PREFIX}{pk}:{uuid.uuid4().hex}",
            retry=False,
        )
    except Exception as exc:  # noqa: BLE001 (whatever the broker raised: the relay retries)
        # Run in-process (development, tests), the task's own exception lands here too.
        OutboxMessage.objects.filter(pk=pk).update(last_error=type(exc).__name__[:300])
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
    OutboxMessage.objects.filter(pk=pk).update(sent_at=timezone.now(), last_error="")
    return True


def _task(name: str) -> Any:
    """The task registered under ``name``, importing its module first: a web process
    has not necessarily imported every app's tasks (our tasks are named by path)."""
    if name not in current_app.tasks:
        import_module(name.rsplit(".", 1)[0])
    if name not in current_app.tasks:
        # A task kept under an old name in another module (renamed, aliased).
        current_app.loader.import_default_modules()
    return current_app.tasks[name]


def task_ran(task_id: str | None) -> bool:
    """A worker ran this task to an end: its row, if it came from the outbox, is done.
    (Connected to Celery's ``task_postrun`` in core.apps.)"""
    if not task_id or not task_id.startswith(TASK_ID_PREFIX):
        return False
    number = task_id[len(TASK_ID_PREFIX) :].split(":", 1)[0]
    if not number.isdigit():
        return False
    done = OutboxMessage.objects.filter(pk=int(number), done_at__isnull=True).update(
        done_at=timezone.now()
    )
    return bool(done)


def relay(*, limit: int = 200) -> int:
    """Beat: publish what is due and unsent (the broker was down, a process died) and
    what was sent but never ran to an end (its message was lost). Returns how many
    were published."""
    due = _due(timezone.now()).order_by("available_at", "pk").values_list("pk", flat=True)[:limit]
    sent = sum(publish(pk) for pk in list(due))
    if sent:
        logger.info("outbox.relayed", extra={"sent": sent})
    return sent


def _due(now: datetime) -> QuerySet[OutboxMessage]:
    """Unsent, due, and not claimed by a publisher that may still be at work; or sent
    so long ago, and not done, that its message is taken to be lost."""
    lost = now - timedelta(seconds=settings.OUTBOX_REDELIVER_AFTER_SECONDS)
    unsent = Q(sent_at__isnull=True, available_at__lte=now) & (
        Q(attempts=0) | Q(available_at__lte=now - CLAIM_TIMEOUT)
    )
    return OutboxMessage.objects.filter(done_at__isnull=True, attempts__lt=MAX_ATTEMPTS).filter(
        unsent | Q(sent_at__lte=lost)
    )


def pending_count() -> int:
    """Rows not done yet: waiting to be sent, or sent and not run to an end."""
    return OutboxMessage.objects.filter(done_at__isnull=True).count()


def purge(*, older_than: timedelta = timedelta(days=1)) -> int:
    """Done rows are kept a day (for looking into a problem), then deleted; so are rows
    given up on (``MAX_ATTEMPTS``) a day after their last attempt, once logged."""
    cutoff = timezone.now() - older_than
    deleted, _ = OutboxMessage.objects.filter(
        Q(done_at__lte=cutoff) | Q(attempts__gte=MAX_ATTEMPTS, available_at__lte=cutoff)
    ).delete()
    return deleted
