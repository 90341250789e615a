"""The inbox's life cycle: accept, process (once), retry, sweep, replay.

``event_accept`` runs in the endpoint: it stores the verified delivery, so the 200
means "stored"; the worker's relay publishes its processing (webhooks/relay.py).
``event_process`` runs in a Celery task and applies the event through the handler
registry in three steps:

1. claim: lock the row (``skip_locked``: another worker holding it means it is
   being handled), mark it ``processing`` and count the attempt; commit. A claim
   that would start an attempt beyond WEBHOOK_MAX_ATTEMPTS dead-letters the row
   instead: the limit is enforced here, not only after a handler returns, because a
   handler that kills its worker never returns.
2. handle, with no transaction open: the handler asks the provider what is true now
   (Stripe's answers can take tens of seconds) and then writes, each step in a short
   transaction of its own. No connection waits "idle in transaction" on a provider,
   and no row lock (the inbox row's, a booking's) is held across a provider call
   (config/outgoing.py refuses such a call in the test profile).
3. finish: lock the row again, check that the claim is still ours, record the
   outcome; one short transaction.

A worker that dies in step 2 leaves the row ``processing``, with whatever steps its
handler committed; the sweeper re-enqueues it after WEBHOOK_PROCESSING_TIMEOUT_SECONDS
and the handler runs again, finishing what is left: handlers are idempotent (the
registry's contract). A row stored while Redis was down stays ``received`` until the
relay (or, without one, the sweeper) publishes it. ``enqueued_at`` tells both which
rows already have a task on its way.

``event_feed`` is the other way in: reconciliation stores an event that the provider
reports but no delivery brought, under the delivery's own dedup key, for the same
processing (``source`` tells the two apart).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

import audit
from audit.sequencer import integration_deferred
from core.actors import Actor
from core.masking import scrub_text
from core.providers import ProviderError
from webhooks.models import WebhookEvent
from webhooks.providers import providers
from webhooks.registry import IGNORED, Event, RetryLater, registry
from webhooks.verification import Delivery

logger = logging.getLogger("slotpay.webhooks")

Status = WebhookEvent.Status
# A queued retry may run this much before its time (clock skew between hosts).
EARLY_SLACK = timedelta(seconds=5)
# How long a claim waits for another transaction's lock on the row before leaving
# the event to whoever holds it (then the sweeper).
CLAIM_LOCK_WAIT = timedelta(seconds=2)
KEPT_HEADERS = ("User-Agent", "Content-Type", "Content-Length", "X-Request-ID")
MAX_HEADER_CHARS = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _actor(provider: str) -> str:
    return f"webhooks.{provider}"


# --- Rejections -------------------------------------------------------------------------


def rejection_record(*, provider: str, reason: str, detail: str = "") -> int:
    """Count a refused delivery and audit it (the first WEBHOOK_REJECTION_AUDIT_LIMIT of
    each reason per hour). Never fails the response: returns this hour's count, or 0.

    Past the audit limit a refusal costs one statement, so a flood of junk costs the
    database little more than the requests cost the web server.
    """
    now = timezone.now()
    count = 0
    try:
        count = _count_rejection(provider, reason, now)
        if count <= settings.WEBHOOK_REJECTION_AUDIT_LIMIT:
            with transaction.atomic():
                audit.record(
                    "webhooks.delivery.rejected",
                    category=audit.Category.SECURITY,
                    actor=_actor(provider),
                    data={
                        "provider": provider,
                        "reason": reason,
                        "detail": detail,
                        "count_this_hour": count,
                    },
                )
    except Exception:
        logger.exception("webhooks.rejection_not_recorded", extra={"provider": provider})
    logger.warning(
        "webhooks.rejected",
        extra={"provider": provider, "reason": reason, "detail": detail, "count": count},
    )
    return count


# One statement that PostgreSQL and SQLite (3.35+) both run; the unique (provider,
# reason, hour) constraint settles concurrent first refusals of an hour.
_COUNT_REJECTION = """
    INSERT INTO "webhooks_webhookrejection"
        ("provider", "reason", "hour", "count", "last_seen_at")
    VALUES (%s, %s, %s, 1, %s)
    ON CONFLICT ("provider", "reason", "hour") DO UPDATE SET
        "count" = "webhooks_webhookrejection"."count" + 1,
        "last_seen_at" = excluded."last_seen_at"
    RETURNING "count"
"""


def _count_rejection(provider: str, reason: str, now: datetime) -> int:
    """Add one to this hour's counter (creating it); returns the new count."""
    connection = transaction.get_connection()
    hour = now.replace(minute=0, second=0, microsecond=0)
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(_COUNT_REJECTION, [provider, reason, adapt(hour), adapt(now)])
        return int(cursor.fetchone()[0])


# --- Accepting --------------------------------------------------------------------------


def _printable(value: str) -> str:
    """``value`` as printable ASCII, escaped (``\\x00``, ``\\xe9``, ``\\ud800``) and cut
    to MAX_HEADER_CHARS: PostgreSQL's jsonb refuses U+0000, UTF-8 refuses lone
    surrogates, and a header is anyone's to fill."""
    escaped = value.encode("ascii", "backslashreplace").decode("ascii")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", escaped)[:MAX_HEADER_CHARS]


def redacted_headers(provider: str, headers: Mapping[str, str]) -> dict[str, str]:
    """A few headers for the record, escaped to printable ASCII; the signature keeps
    its timestamp only."""
    kept = {name: _printable(headers[name]) for name in KEPT_HEADERS if headers.get(name)}
    signature_header = providers[provider].signature_header
    signature = headers.get(signature_header, "")
    stamp = next((part for part in signature.split(",") if part.startswith("t=")), "")
    if signature:
        redacted = f"{stamp},v1=[redacted]" if stamp else "[redacted]"
        kept[signature_header] = _printable(redacted)
    return kept


def event_accept(
    *,
    delivery: Delivery,
    headers: Mapping[str, str],
    request_id: str = "",
    source: str = WebhookEvent.Source.DELIVERY,
) -> str:
    """Store a verified delivery once; returns ``stored``, ``duplicate`` or ``ignored``.

    One INSERT, committed before this returns: the unique (provider, event_id)
    constraint decides between concurrent copies. The audit entry for the accepted
    event is written by its first processing claim, not here: appending to the audit
    chain serialises writers on the chain head's lock, and in the endpoint that lock
    cost most of its throughput (bench/webhook_ingest.py). The stored row is the
    durable record of acceptance meanwhile.
    """
    provider, event_type = delivery.provider, delivery.event_type
    if not registry.subscribed(provider, event_type):
        logger.info("webhooks.unsubscribed", extra={"provider": provider, "event_type": event_type})
        return "ignored"
    now = timezone.now()
    # With a worker, its relay publishes the task (webhooks/relay.py): the endpoint
    # never waits on the broker. In-process tasks run after the commit, from here.
    in_process = _eager()
    fields = {
        "provider": provider,
        "event_id": delivery.event_id,
        "event_type": event_type,
        "received_at": now,
        "next_attempt_at": now,
        "enqueued_at": now if in_process else None,
        "payload": delivery.body,
        "headers": redacted_headers(provider, headers),
        "request_id": request_id[:64],
        "source": source,
    }
    try:
        if transaction.get_connection().in_atomic_block:
            # Inside a caller's transaction (tests): a savepoint keeps a duplicate's
            # IntegrityError from breaking it.
            with transaction.atomic():
                event = WebhookEvent.objects.create(**fields)
        else:
            # In autocommit, one round trip: BEGIN and COMMIT would add two, and the
            # endpoint's throughput is mostly round trips (bench/webhook_ingest.py).
            event = WebhookEvent.objects.create(**fields)
    except IntegrityError:
        # Only the unique (provider, event_id) constraint means "a copy came first";
        # any other integrity error (a value too long, a NOT NULL) is a bug to surface.
        if not WebhookEvent.objects.filter(provider=provider, event_id=delivery.event_id).exists():
            raise
        created = False
    else:
        created = True
        if in_process:
            pk = event.pk
            transaction.on_commit(lambda: event_enqueue(pk=pk, noted=True))
    logger.info(
        "webhooks.accepted",
        extra={
            "provider": provider,
            "event_type": event_type,
            "event_id": delivery.event_id,
            "duplicate": not created,
            "source": source,
        },
    )
    return "stored" if created else "duplicate"


@dataclass(frozen=True)
class Fed:
    """What :func:`event_feed` did: ``outcome`` is event_accept's, ``event`` the row."""

    outcome: str
    event: WebhookEvent | None


def event_feed(*, provider: str, data: Mapping[str, Any], request_id: str = "") -> Fed:
    """Store an event that no delivery brought (reconciliation found it at the
    provider) exactly as its delivery would have been stored, marked as coming from
    reconciliation, and enqueue it for the same handlers.

    The dedup key comes from the provider's own ``envelope``, the one the endpoint
    uses, so a copy already in the inbox makes this a ``duplicate`` (left alone), and
    a late delivery of it is a duplicate too. Raises ``webhooks.schemas.SchemaError``
    or ``webhooks.verification.Rejected`` when ``data`` is not an event the endpoint
    would accept.
    """
    found = providers.get(provider)
    if found is None:
        raise ValueError(f"no webhook provider {provider!r} is registered")
    parsed = json.loads(json.dumps(data))  # what the endpoint would have parsed
    envelope = found.envelope(parsed)
    delivery = Delivery(
        provider=provider,
        body=json.dumps(parsed),
        data=parsed,
        event_id=envelope.event_id,
        event_type=envelope.event_type,
    )
    outcome = event_accept(
        delivery=delivery,
        headers={},
        request_id=request_id,
        source=WebhookEvent.Source.RECONCILIATION,
    )
    row = WebhookEvent.objects.filter(provider=provider, event_id=envelope.event_id).first()
    return Fed(outcome=outcome, event=row)


def _eager() -> bool:
    return bool(current_app.conf.task_always_eager)


def event_enqueue(*, pk: int, countdown: float | None = None, noted: bool = False) -> bool:
    """Queue the processing task; with the broker down, leave it to the sweeper.

    ``enqueued_at`` is noted before publishing (so no claim can come before the note)
    and cleared when the publish fails, so that the sweeper knows which rows have a
    task on its way. ``noted``: the caller set it already (event_accept's INSERT).
    """
    from webhooks.tasks import process_event

    rows = WebhookEvent.objects.filter(pk=pk)
    if not noted:
        rows.update(enqueued_at=timezone.now())
    try:
        process_event.apply_async((pk,), countdown=countdown, retry=False)
    except (BrokerError, RedisError, OSError) as exc:
        logger.warning(
            "webhooks.enqueue_failed",
            extra={"webhook_event": pk, "error": type(exc).__name__},
        )
        try:
            rows.update(enqueued_at=None)
        except DatabaseError:
            # Left noted, the row is presumed lost after the processing timeout instead.
            logger.warning("webhooks.enqueue_not_cleared", extra={"webhook_event": pk})
        return False
    return True


# --- Processing -------------------------------------------------------------------------


def backoff(attempts: int) -> timedelta:
    """The wait after the n-th failed attempt: base, twice that, four times, ... capped."""
    seconds = settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1)
    return timedelta(seconds=min(settings.WEBHOOK_RETRY_CAP_SECONDS, seconds))


def _claimable(row: WebhookEvent, now: datetime, *, force: bool) -> bool:
    if row.status == Status.PROCESSING:
        timeout = timedelta(seconds=settings.WEBHOOK_PROCESSING_TIMEOUT_SECONDS)
        return row.claimed_at is None or row.claimed_at <= now - timeout
    if force:
        return True
    return row.status in WebhookEvent.PENDING and row.next_attempt_at <= now + EARLY_SLACK


def _audit(
    row: WebhookEvent,
    what: str,
    data: dict[str, Any],
    *,
    actor: Any = None,
    request_id: str | None = None,
) -> None:
    """``webhooks.event.<what>`` in the transaction category, naming the event."""
    audit.record(
        f"webhooks.event.{what}",
        category=audit.Category.TRANSACTION,
        actor=actor if actor is not None else _actor(row.provider),
        target=row,
        data={"provider": row.provider, "event_id": row.event_id, "type": row.event_type, **data},
        request_id=request_id,
    )


def _locked(pk: int) -> WebhookEvent | None:
    """The row, locked; None if it is gone or its lock is held past CLAIM_LOCK_WAIT.

    The lock's holders are short transactions (another claim, an outcome, a replay, a
    relay's scan, which can keep a row it rechecked and passed over locked until it
    commits), so a claim waits for them: skipped, a published event would wait for the
    sweeper. It never waits longer than CLAIM_LOCK_WAIT, so a worker is not held by a
    transaction that is stuck.
    """
    query = WebhookEvent.objects.select_for_update().filter(pk=pk)
    if transaction.get_connection().vendor != "postgresql":
        return query.first()
    try:
        with transaction.atomic():  # a savepoint: the timeout must not end the claim's
            with transaction.get_connection().cursor() as cursor:
                wait = f"{int(CLAIM_LOCK_WAIT.total_seconds() * 1000)}ms"
                cursor.execute("SET LOCAL lock_timeout = %s", [wait])
                row = query.first()
                cursor.execute("SET LOCAL lock_timeout TO DEFAULT")
            return row
    except DatabaseError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != "55P03":  # lock_not_available
            raise
        return None


def _claim(pk: int, *, force: bool) -> WebhookEvent | str | None:
    """Claim the row for one attempt. Returns the row as claimed (``claimed_at`` is
    the claim's time); or ``dead`` when no attempt is left (the row is dead-lettered
    instead); or None: not ours now."""
    now = timezone.now()
    with transaction.atomic():
        row = _locked(pk)
        if row is None or not _claimable(row, now, force=force):
            return None
        if row.claimed_at is None:  # its first claim: the acceptance enters the audit trail
            _audit(
                row,
                "accepted",
                {"received_at": row.received_at.isoformat(), "source": row.source},
                request_id=row.request_id,
            )
        limit = settings.WEBHOOK_MAX_ATTEMPTS
        if row.attempts >= limit and row.status not in WebhookEvent.FINAL:
            if row.status == Status.PROCESSING:
                error = (
                    f"attempt {row.attempts} never finished (its worker died or timed out); "
                    f"no attempt left of {limit}"
                )
            else:
                error = f"no attempt left of {limit}"
            _finish(row, Status.DEAD, error, None)
            return Status.DEAD
        row.status = Status.PROCESSING
        row.claimed_at = now
        row.attempts += 1
        row.save(update_fields=["status", "claimed_at", "attempts"])
    return row


def _event(row: WebhookEvent) -> Event:
    return Event(
        pk=row.pk,
        provider=row.provider,
        event_id=row.event_id,
        event_type=row.event_type,
        data=json.loads(row.payload or "{}"),
        received_at=row.received_at,
        attempt=row.attempts,
    )


def _error_text(exc: BaseException) -> str:
    return scrub_text(f"{type(exc).__name__}: {exc}")[:1000]


def event_process(*, pk: int, force: bool = False) -> str | None:
    """Process one stored event if it is due; returns its new status (None: not ours now).

    The audit entries of its steps (the claim, the handler's, the outcome) are
    integrated into the chain once, when it returns (``integration_deferred``).
    """
    with integration_deferred():
        return _process(pk, force=force)


def _process(pk: int, *, force: bool) -> str | None:
    claimed = _claim(pk, force=force)
    if not isinstance(claimed, WebhookEvent):
        return claimed
    claimed_at = claimed.claimed_at
    result = _handle(claimed)  # no transaction open: see the module's doc
    with transaction.atomic():
        row = (
            WebhookEvent.objects.select_for_update(skip_locked=True)
            .filter(pk=pk, status=Status.PROCESSING, claimed_at=claimed_at)
            .first()
        )
        if row is None:
            # Taken over meanwhile (we were slower than the timeout): the other
            # worker's attempt records the outcome; the handler ran idempotently.
            logger.warning("webhooks.claim_lost", extra={"webhook_event": pk})
            return None
        if result.retry_in is not None and row.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
            result = _Outcome(Status.DEAD, error=result.error)
        _finish(row, result.status, result.error, result.retry_in, reason=result.reason)
    if result.retry_in is not None and not _eager():
        # The sweeper is the backstop; the queued retry just makes it prompt.
        event_enqueue(pk=pk, countdown=result.retry_in.total_seconds())
    return result.status


@dataclass(frozen=True)
class _Outcome:
    status: str
    error: str = ""  # last_error: why it failed, waits, or was refused
    reason: str = ""  # why it was ignored (audited)
    retry_in: timedelta | None = None


def _handle(row: WebhookEvent) -> _Outcome:
    """Run the event's handler, in autocommit: its steps commit as it makes them."""
    handler = registry.handler(row.provider, row.event_type)
    if handler is None:
        return _Outcome(Status.IGNORED, reason="no handler for this event type")
    if row.payload is None:
        return _Outcome(Status.DEAD, error="the payload was purged; nothing left to process")
    try:
        result = handler(_event(row))
    except RetryLater as exc:
        waiting = scrub_text(f"waiting: {exc}")[:1000]
        return _Outcome(Status.WAITING, error=waiting, retry_in=exc.delay or backoff(row.attempts))
    except Exception as exc:  # noqa: BLE001 (whatever a handler raised is recorded, retried)
        return _failure(row, exc)
    if result == IGNORED:
        return _Outcome(Status.IGNORED, reason="the handler found nothing of ours in it")
    return _Outcome(Status.PROCESSED)


def _failure(row: WebhookEvent, exc: Exception) -> _Outcome:
    """What a handler's exception means. A permanent provider answer (no such object,
    an invalid request) ends the event ignored: asking again gets the same answer, so
    there is nothing to act on (a warning, no traceback). Anything else is a failure,
    retried after the backoff and logged with its traceback."""
    error = _error_text(exc)
    extra = {"webhook_event": row.pk, "event_type": row.event_type}
    if isinstance(exc, ProviderError) and exc.permanent:
        logger.warning("webhooks.provider_refused", extra={**extra, "error": error})
        return _Outcome(Status.IGNORED, error=error, reason=error)
    logger.error("webhooks.handler_failed", extra=extra, exc_info=exc)
    return _Outcome(Status.FAILED, error=error, retry_in=backoff(row.attempts))


def _finish(
    row: WebhookEvent, outcome: str, error: str, retry_in: timedelta | None, *, reason: str = ""
) -> None:
    """Record an attempt's outcome; ``reason`` says why an event was ignored."""
    now = timezone.now()
    row.status = outcome
    row.last_error = error
    if outcome in (Status.PROCESSED, Status.IGNORED):
        row.processed_at = now
    if retry_in is not None:
        row.next_attempt_at = now + retry_in
    row.save(update_fields=["status", "last_error", "processed_at", "next_attempt_at"])
    _audit(
        row,
        "dead_lettered" if outcome == Status.DEAD else outcome,
        {"attempt": row.attempts, "error": error, **({"reason": reason} if reason else {})},
    )
    log = logger.error if outcome == Status.DEAD else logger.info
    log(
        "webhooks.processed",
        extra={
            "webhook_event": row.pk,
            "event_type": row.event_type,
            "outcome": outcome,
            "attempt": row.attempts,
        },
    )


# --- Sweeping and replaying ---------------------------------------------------------------


def events_stalled(*, now: datetime | None = None) -> QuerySet[WebhookEvent]:
    """Rows that should have been processed by now and have no task on its way.

    A row needs a task when it is pending and has been due for
    WEBHOOK_REQUEUE_AFTER_SECONDS, or ``processing`` with a claim older than
    WEBHOOK_PROCESSING_TIMEOUT_SECONDS (its worker died). It has a task on its way
    when one was published (``enqueued_at``) after its last claim, and has waited
    less than WEBHOOK_PROCESSING_TIMEOUT_SECONDS since it was published or came due,
    whichever is later: such a row is only queued behind a backlog, and a copy per
    sweep would make that backlog longer. Past that time its task is presumed lost
    (Redis restarted empty, a worker died holding it and Redis keeps it until its
    visibility timeout, a process died between commit and publish) and it is queued
    again: at most one extra task per timeout, which finds the row claimed or done.
    A failed publish clears ``enqueued_at``, so that row is queued at once.
    """
    now = now or timezone.now()
    requeue = now - timedelta(seconds=settings.WEBHOOK_REQUEUE_AFTER_SECONDS)
    timeout = now - timedelta(seconds=settings.WEBHOOK_PROCESSING_TIMEOUT_SECONDS)
    needs_task = Q(status__in=WebhookEvent.PENDING, next_attempt_at__lte=requeue) | Q(
        status=Status.PROCESSING, claimed_at__lte=timeout
    )
    none_on_its_way = (
        Q(enqueued_at__isnull=True)
        | Q(enqueued_at__lte=F("claimed_at"))
        | Q(enqueued_at__lte=timeout, next_attempt_at__lte=timeout)
    )
    return WebhookEvent.objects.filter(needs_task & none_on_its_way)


def events_sweep(*, limit: int = 500) -> int:
    """Re-enqueue stalled events (Redis was down, a worker died); returns how many."""
    pks = list(events_stalled().order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
    queued = sum(event_enqueue(pk=pk) for pk in pks)
    if pks:
        logger.warning("webhooks.swept", extra={"found": len(pks), "queued": queued})
    return queued


def events_replay(
    *,
    events: Iterable[WebhookEvent],
    actor: Actor,
    reason: str,
    inline: bool = False,
    statuses: Collection[str] | None = None,
) -> list[tuple[WebhookEvent, str]]:
    """Process chosen events again through the same path, each replay audited with
    ``actor`` (the staff member, or the command's operator) and ``reason``.

    The attempt count starts over. Events whose payload was purged cannot be replayed
    (the provider's API still has Stripe's for 30 days: use reconciliation), nor, when
    ``statuses`` is given, events not in one of them (checked under the row's lock).
    Returns (event, what happened) pairs.
    """
    results = []
    for event in events:
        if event.payload is None:
            results.append((event, "skipped: payload purged"))
            continue
        with transaction.atomic():
            row = WebhookEvent.objects.select_for_update().get(pk=event.pk)
            if row.status == Status.PROCESSING and not _claimable(row, timezone.now(), force=True):
                results.append((row, "skipped: being processed"))
                continue
            if statuses is not None and row.status not in statuses:
                results.append((row, f"skipped: {row.get_status_display().lower()}"))
                continue
            previous = row.status
            row.status, row.attempts, row.next_attempt_at = Status.RECEIVED, 0, timezone.now()
            row.save(update_fields=["status", "attempts", "next_attempt_at"])
            _audit(row, "replayed", {"previous_status": previous, "reason": reason}, actor=actor)
        if inline:
            outcome = event_process(pk=row.pk)
            results.append((row, f"replayed: {outcome}"))
        else:
            queued = event_enqueue(pk=row.pk)
            results.append((row, "queued" if queued else "stored; the sweeper will queue it"))
    return results
