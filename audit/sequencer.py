"""The sequencer: queued audit entries integrated into the chain, in batches.

Writers (``audit.record``) insert an entry *queued*, in their own transaction and
without any shared lock: its contents and their leaf digest (``chain.leaf_hash``),
no place. Committed or rolled back with the writer's change, as before; but no
audited transaction waits for another any more.

Integration (``integrate_pending``) takes one lock per batch, the chain head's row,
reads the committed queued entries (at most INTEGRATION_BATCH, lowest id first),
gives them their sequence and their positions in their streams in that order, links
each one's hash to the one before it in its stream, writes them all in one UPDATE
(from arrays, on PostgreSQL) and moves the heads. The sequence and every stream's
positions stay gap-free, and a batch comes after everything integrated before it.

Why a hash chain over the batch, not a Merkle tree per batch: every entry keeps an
``entry_hash`` linked to the one before it, so checkpoints (a stream's hash at a
position), purges (segments cut at a checkpoint's position), incremental
verification (from a verified position) and the entries chained before the
sequencer all keep their meaning unchanged. The chain costs the sequencer one
SHA-256 of about 250 bytes per entry (a few microseconds); the lock, held once per
batch rather than once per audited transaction, was the cost to remove. A Merkle
root would buy inclusion proofs without a walk, which nothing here needs.

When: after the commit of each audited transaction its writer tries
(``integrate_after_commit``), never waiting. On PostgreSQL the sequencer's lock is a
session advisory lock held across batches, so that a writer finding it taken leaves
after one round trip; each batch also locks the head row (SKIP LOCKED), which
checkpoints and integration inside a caller's transaction hold until they commit,
and then try again. A holder's read may have been taken just before a writer
committed, so a holder reads the queue again once it has let go, and stops only when
that read finds nothing: a writer that found the lock taken had committed before
then, so its entry is seen (by that read, or by whoever took the lock in between,
whose read comes later still). Backstops: the beat task ``audit.tasks.integrate``
every few seconds, and verification and checkpoints, which integrate what is
committed before they read.

``integration_delay()`` says how many entries are queued and how old the oldest is:
``audit_verify`` prints it, the admin shows it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection as default_connection
from django.db import transaction
from django.db.models import Count, Min
from django.utils import timezone

from audit import chain
from audit.models import GENESIS_HASH, AuditChainHead, AuditEntry, AuditStreamHead

logger = logging.getLogger(__name__)

# Entries per batch: one lock, one read and one UPDATE each.
INTEGRATION_BATCH = 5000
# Rounds one call integrates at most before leaving the rest to the next trigger: a
# caller after a commit is not held for ever by a flood of writers.
MAX_ROUNDS = 50
# Rows per UPDATE off PostgreSQL (bulk_update's CASE grows with each).
OTHER_VENDOR_CHUNK = 500


class IntegrationError(Exception):
    """A batch could not be written as read: it is rolled back, nothing integrated."""


@dataclass(frozen=True)
class IntegrationDelay:
    """How far integration lags: entries queued, and when the oldest was written."""

    queued: int
    oldest_at: datetime | None
    measured_at: datetime

    @property
    def oldest_age(self) -> timedelta | None:
        return self.measured_at - self.oldest_at if self.oldest_at else None

    def describe(self) -> str:
        age = self.oldest_age
        if not self.queued or age is None:
            return "no entry waiting to be integrated"
        return (
            f"{self.queued} entr{'y' if self.queued == 1 else 'ies'} waiting to be "
            f"integrated, the oldest written {_duration(age)} ago"
        )


def _duration(age: timedelta) -> str:
    """``0.7 s``, ``12 min``, ``5.5 h``, ``3.0 days``: a lag in the unit that reads."""
    seconds = age.total_seconds()
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def integration_delay() -> IntegrationDelay:
    """The queue now (a partial index holds it: cheap however long the log)."""
    found = AuditEntry.objects.filter(sequence__isnull=True).aggregate(
        queued=Count("id"), oldest=Min("created_at")
    )
    return IntegrationDelay(found["queued"], found["oldest"], timezone.now())


def _head(*, wait: bool) -> AuditChainHead | None:
    """The chain head, locked until the transaction ends; None when another holds it
    and ``wait`` is false."""
    heads = AuditChainHead.objects.select_for_update(skip_locked=not wait).filter(pk=1)
    head = heads.first()
    if head is None and not AuditChainHead.objects.filter(pk=1).exists():
        _create_head()
        head = heads.first()
    return head


def _create_head() -> None:
    # First entry ever (or after a test flush): create the head, tolerating a race.
    AuditChainHead.objects.bulk_create([AuditChainHead(pk=1)], ignore_conflicts=True)


def locked_head() -> AuditChainHead:
    """The chain head, locked until the caller's transaction ends (waiting for it)."""
    head = _head(wait=True)
    if head is None:  # pragma: no cover (a waiting lock returns the row)
        raise IntegrationError("the chain head could not be locked")
    return head


def locked_stream_head(stream: str) -> AuditStreamHead:
    """A stream's head, locked until the caller's transaction ends. Take the global
    head's lock first (``locked_head``): every caller locks in that order."""
    head = AuditStreamHead.objects.select_for_update().filter(stream=stream).first()
    if head is None:
        AuditStreamHead.objects.bulk_create([AuditStreamHead(stream=stream)], ignore_conflicts=True)
        head = AuditStreamHead.objects.select_for_update().get(stream=stream)
    return head


Queued = tuple[int, str, str]  # id, stream, leaf hash
Placed = tuple[int, int, int, str, str]  # id, sequence, position, previous hash, entry hash
StreamHeads = dict[str, tuple[int, str]]  # stream -> (position, entry hash)


def place(queued: list[Queued], sequence: int, heads: StreamHeads) -> list[Placed]:
    """Give queued entries, in order, the sequence numbers after ``sequence`` and
    each the position after its stream's head, each linked to the one before it in
    its stream. ``heads`` is moved to the last placed entry of each stream."""
    placed: list[Placed] = []
    for pk, stream, leaf in queued:
        position, previous = heads.get(stream, (0, GENESIS_HASH))
        sequence += 1
        position += 1
        linked = chain.linked_hash(leaf, sequence, stream, position, previous)
        placed.append((pk, sequence, position, previous, linked))
        heads[stream] = (position, linked)
    return placed


# --- PostgreSQL: a batch in three statements ---------------------------------------------

# The lock (given up at once without ``wait``), whether the head exists at all, and the
# transaction's commit made asynchronous (see _round_postgresql), in one statement.
LOCK_HEAD = """
SELECT head.sequence, head.entry_hash,
       EXISTS (SELECT 1 FROM audit_auditchainhead WHERE id = 1),
       {asynchronous}
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT sequence, entry_hash FROM audit_auditchainhead WHERE id = 1 FOR UPDATE {skip}
) AS head ON true
"""
# The oldest queued entries, and the stream heads they will link to.
READ_QUEUE = """
(SELECT id, stream, leaf_hash, NULL::bigint FROM audit_auditentry
 WHERE sequence IS NULL ORDER BY id LIMIT %s)
UNION ALL
(SELECT NULL, stream, entry_hash, position FROM audit_auditstreamhead)
"""
# Every entry placed, the global head and the stream heads moved: one statement.
WRITE_BATCH = """
WITH placed AS (
    UPDATE audit_auditentry AS entry
    SET sequence = placed.sequence, position = placed.position,
        previous_hash = placed.previous_hash, entry_hash = placed.entry_hash,
        integrated_at = %s
    FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::varchar[], %s::varchar[])
        AS placed(id, sequence, position, previous_hash, entry_hash)
    WHERE entry.id = placed.id AND entry.sequence IS NULL
    RETURNING 1
), chain_head AS (
    UPDATE audit_auditchainhead SET sequence = %s, entry_hash = %s WHERE id = 1
), stream_heads AS (
    INSERT INTO audit_auditstreamhead (stream, position, entry_hash)
    SELECT * FROM unnest(%s::varchar[], %s::bigint[], %s::varchar[])
    ON CONFLICT (stream) DO UPDATE
        SET position = EXCLUDED.position, entry_hash = EXCLUDED.entry_hash
)
SELECT count(*) FROM placed
"""


def _round_postgresql(*, wait: bool, limit: int, asynchronous: bool) -> int | None:
    """One batch, in the caller's transaction; None when another holds the lock.

    ``asynchronous``: the commit does not wait for its WAL flush. An integration is
    derived state: PostgreSQL writes the WAL in order, so a crash loses at most the
    last few asynchronous commits, whole, never one from the middle; their entries
    (each committed durably by its writer) are then queued again, and the next batch
    integrates them from the heads as they were. Any later synchronous commit (a
    writer's, a checkpoint's) flushes the integrations before it. This spares every
    audited transaction a second disk flush after its own. Never inside a caller's
    transaction, whose commit must stay durable.
    """
    lock = LOCK_HEAD.format(
        skip="" if wait else "SKIP LOCKED",
        asynchronous="set_config('synchronous_commit', 'off', true)" if asynchronous else "''",
    )
    with default_connection.cursor() as cursor:
        cursor.execute(lock)
        sequence, _hash, present, _setting = cursor.fetchone()
        if not present:
            _create_head()
            cursor.execute(lock)
            sequence, _hash, present, _setting = cursor.fetchone()
        if sequence is None:
            return None
        cursor.execute(READ_QUEUE, [limit])
        rows = cursor.fetchall()
        queued = [(pk, stream, leaf) for pk, stream, leaf, _position in rows if pk is not None]
        if not queued:
            return 0
        heads = {
            stream: (position, entry_hash)
            for pk, stream, entry_hash, position in rows
            if pk is None
        }
        placed = place(queued, sequence, heads)
        columns = [list(column) for column in zip(*placed, strict=True)]
        streams = sorted(heads)
        cursor.execute(
            WRITE_BATCH,
            [
                timezone.now(),
                *columns,
                placed[-1][1],
                placed[-1][4],
                streams,
                [heads[stream][0] for stream in streams],
                [heads[stream][1] for stream in streams],
            ],
        )
        (written,) = cursor.fetchone()
    if written != len(placed):
        raise IntegrationError(f"{len(placed)} entries were read but {written} were written")
    return len(placed)


# --- Elsewhere (SQLite in development): the ORM ------------------------------------------


def integrate_batch(head: AuditChainHead, *, limit: int = INTEGRATION_BATCH) -> int:
    """Integrate up to ``limit`` queued entries, the caller holding ``head``'s lock
    (``locked_head``) in its transaction; returns how many."""
    queued = list(
        AuditEntry.objects.filter(sequence__isnull=True)
        .order_by("id")
        .values_list("id", "stream", "leaf_hash")[:limit]
    )
    if not queued:
        return 0
    streams = {stream: locked_stream_head(stream) for stream in sorted({row[1] for row in queued})}
    heads = {stream: (row.position, row.entry_hash) for stream, row in streams.items()}
    placed = place(queued, head.sequence, heads)
    now = timezone.now()
    entries = [
        AuditEntry(
            pk=pk,
            sequence=sequence,
            position=position,
            previous_hash=previous_hash,
            entry_hash=entry_hash,
            integrated_at=now,
        )
        for pk, sequence, position, previous_hash, entry_hash in placed
    ]
    fields = ["sequence", "position", "previous_hash", "entry_hash", "integrated_at"]
    written = AuditEntry.objects.filter(sequence__isnull=True).bulk_update(
        entries, fields, batch_size=OTHER_VENDOR_CHUNK
    )
    if written != len(placed):
        raise IntegrationError(f"{len(placed)} entries were read but {written} were written")
    head.sequence, head.entry_hash = placed[-1][1], placed[-1][4]
    head.save(update_fields=["sequence", "entry_hash"])
    for stream, row in streams.items():
        row.position, row.entry_hash = heads[stream]
        row.save(update_fields=["position", "entry_hash"])
    return len(placed)


def _round(*, wait: bool, limit: int, asynchronous: bool) -> int | None:
    with transaction.atomic():
        if default_connection.vendor == "postgresql":
            return _round_postgresql(wait=wait, limit=limit, asynchronous=asynchronous)
        head = _head(wait=wait)
        return None if head is None else integrate_batch(head, limit=limit)


def _anything_queued() -> bool:
    return AuditEntry.objects.filter(sequence__isnull=True).exists()


def _integrate_in_transactions(*, wait: bool, limit: int) -> int:
    """Batch after batch, each locking the head row (SKIP LOCKED without ``wait``);
    inside a caller's transaction, and off PostgreSQL."""
    total = 0
    # Inside a caller's transaction, the commit is the caller's (and stays durable);
    # the head stays locked until then, so whoever finds it taken leaves its entries
    # to this transaction's try once it commits.
    asynchronous = not default_connection.in_atomic_block
    if not asynchronous:
        integrate_after_commit()
    for _ in range(MAX_ROUNDS):
        integrated = _round(wait=wait, limit=limit, asynchronous=asynchronous)
        if integrated is None:
            return total
        total += integrated
        # Read again, the lock released: what a writer committed before it found
        # the lock taken is visible now.
        if integrated < limit and not _anything_queued():
            return total
    logger.warning("audit.integration.rounds_exhausted", extra={"integrated": total})
    return total


# The advisory lock one sequencer at a time holds across its batches (any constant:
# advisory locks are per database).
SEQUENCER_LOCK = int.from_bytes(b"slotpayA", "big")


@contextmanager
def _sequencer_lock(*, wait: bool) -> Iterator[bool]:
    """PostgreSQL, outside any transaction: the session's advisory lock, so that a
    writer that finds integration under way leaves in one round trip (most writers,
    under load). Each batch still locks the head row, as checkpoints and integration
    inside a caller's transaction do."""
    # Verification and checkpoints wait this long, then go on with what is integrated
    # (the rest is reported as queued).
    patience = float(settings.AUDIT_INTEGRATION_WAIT_SECONDS) if wait else 0.0
    deadline = time.monotonic() + patience
    with default_connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [SEQUENCER_LOCK])
            if cursor.fetchone()[0]:
                break
            if time.monotonic() >= deadline:
                if wait:
                    # Someone holds it (a stuck sequencer, or a session holding it on
                    # purpose): verification goes on with what is integrated and
                    # reports the queue, instead of hanging.
                    logger.warning("audit.integration.lock_busy")
                yield False
                return
            time.sleep(0.05)
    try:
        yield True
    finally:
        with default_connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [SEQUENCER_LOCK])


def integrate_pending(*, wait: bool = False, limit: int = INTEGRATION_BATCH) -> int:
    """Integrate every committed queued entry, batch after batch; returns how many
    this call integrated.

    Without ``wait``, gives up at once when another holds the lock (that holder reads
    the queue again once it has let go: see the module's docstring). With it, waits
    for the lock: what verification and checkpoints do, so that they see everything
    committed before them integrated.
    """
    if default_connection.vendor != "postgresql" or default_connection.in_atomic_block:
        return _integrate_in_transactions(wait=wait, limit=limit)
    total = 0
    for _ in range(MAX_ROUNDS):
        with _sequencer_lock(wait=wait) as held:
            if not held:
                return total
            # The head row too, without waiting: a checkpoint or a caller's transaction
            # holding it tries again once it commits.
            while (integrated := _round(wait=wait, limit=limit, asynchronous=True)) == limit:
                total += integrated
            if integrated is None:
                return total
            total += integrated
        # Read again, the lock released: what a writer committed before it found
        # the lock taken is visible now.
        if not _anything_queued():
            return total
    logger.warning("audit.integration.rounds_exhausted", extra={"integrated": total})
    return total


# Set inside ``integration_deferred``: the commits there that asked for an integration.
_deferred: ContextVar[list[bool] | None] = ContextVar("audit_integration_deferred", default=None)


def _integrate_after_commit() -> None:
    asked = _deferred.get()
    if asked is not None:
        asked.append(True)  # made once, on the way out of integration_deferred
        return
    integrate_pending()


@contextmanager
def integration_deferred() -> Iterator[None]:
    """One integration for a unit of work made of several audited transactions (a
    webhook event's claim, its handler's steps, its outcome), made on the way out,
    instead of one after each commit: each costs a few round trips, most of them
    finding nothing left to do under load.

    Nothing else changes: each entry is committed, queued, by its own transaction as
    before; only its integration comes when the unit ends (milliseconds later, or at
    the beat task's next run if the process dies first, as after any commit). Failures
    are logged, never raised, as after a commit. Nested uses integrate once, at the
    outermost exit.
    """
    if _deferred.get() is not None:
        yield
        return
    asked: list[bool] = []
    token = _deferred.set(asked)
    try:
        yield
    finally:
        _deferred.reset(token)
        if asked:
            try:
                integrate_pending()
            except Exception:  # as after a commit (robust hooks): the beat task catches up
                logger.exception("audit.integration.deferred_failed")


def integrate_after_commit() -> None:
    """Have the caller's queued entries integrated once its transaction commits (at
    once in autocommit): one try per transaction, however many entries it records.
    Failures are logged, never raised into the caller's request; the beat task
    catches up."""
    connection = transaction.get_connection()
    if connection.in_atomic_block:
        open_savepoints = set(connection.savepoint_ids)
        for savepoints, callback, _robust in connection.run_on_commit:
            if callback is _integrate_after_commit and set(savepoints) <= open_savepoints:
                return
    transaction.on_commit(_integrate_after_commit, robust=True)
