"""What the audit app purges and when (rules for audit.purges' registry).

- ``audit.security_segments`` and ``audit.transaction_segments``: whole segments of
  the audit log's two streams, a segment being the entries a signed checkpoint
  closed, once that checkpoint is older than the stream's retention (1 year for
  security and access entries, 7 years for transaction and data entries). Oldest
  segment first, so what survives always starts right after a checkpoint, or, mid-
  purge, ends at one; a segment holding an entry about a target under a legal hold
  waits, and so does every segment after it.
- ``audit.security_event_counts``: the hourly counts of failed sign-ins, 90 days.

Entries leave only through ``audit_purge_segment`` (PostgreSQL; migration 0006),
which checks the checkpoint and the periods again; on SQLite the same checks run here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from audit import purges
from audit.categories import Category
from audit.models import AuditCheckpoint, AuditEntry, SecurityEventCount, Stream
from audit.services import PURGE_STARTED_ACTION, PURGED_ACTION, STREAM_PERIODS, record

ACTOR = "audit.retention"
# The periods audit_purge_segment enforces too (migration 0006): change both together.
STREAM_RETENTION = {Stream(name): period for name, period in STREAM_PERIODS.items()}
# The hourly counts of failed sign-ins and lockouts: long enough to compare this
# quarter's floods with the last, not a record of anyone (the entries are that).
SECURITY_EVENT_COUNT_DAYS = 90
# Held targets per query when looking for them in a segment.
HOLD_CHUNK = 500


class PurgeRefusedError(Exception):
    """What audit_purge_segment refuses, refused the same way off PostgreSQL."""


@dataclass(frozen=True)
class Segment:
    """The surviving entries of one segment: positions ``first`` to ``last`` of a
    stream, closed by a checkpoint signed at ``sealed_at``."""

    stream: str
    first: int
    last: int
    sealed_at: datetime

    @property
    def rows(self) -> int:
        return self.last - self.first + 1


def _lowest(stream: str) -> int | None:
    return (
        AuditEntry.objects.filter(stream=stream)
        .order_by("position")
        .values_list("position", flat=True)
        .first()
    )


def segments(stream: str) -> Iterator[Segment]:
    """The stream's sealed segments that still hold entries, oldest first."""
    lowest = _lowest(stream)
    if lowest is None:
        return
    first = lowest
    closing = AuditCheckpoint.objects.filter(stream=stream, position__gte=lowest).order_by(
        "position", "created_at"
    )
    for checkpoint in closing:
        if checkpoint.position < first:
            continue  # a second checkpoint at the same position: the first one sealed it
        yield Segment(stream, first, checkpoint.position, checkpoint.created_at)
        first = checkpoint.position + 1


def _hold_on(segment: Segment, held: dict[tuple[str, str], str]) -> str | None:
    """The hold covering an entry of ``segment`` (the first found), if any."""
    targets = list(held)
    rows = AuditEntry.objects.filter(
        stream=segment.stream, position__gte=segment.first, position__lte=segment.last
    )
    for start in range(0, len(targets), HOLD_CHUNK):
        covered = Q()
        for target_type, target_id in targets[start : start + HOLD_CHUNK]:
            covered |= Q(target_type=target_type, target_id=target_id)
        found = rows.filter(covered).values_list("target_type", "target_id").first()
        if found is not None:
            return held[found]
    return None


def _started(segment: Segment) -> AuditEntry | None:
    return AuditEntry.objects.filter(
        action=PURGE_STARTED_ACTION,
        data__stream=segment.stream,
        data__through_position=segment.last,
    ).first()


def _delete(segment: Segment, now: datetime, limit: int) -> int:
    """At most ``limit`` of the segment's oldest entries, through the database
    function on PostgreSQL; elsewhere with the function's checks, in Python."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT audit_purge_segment(%s, %s, %s, %s)",
                [segment.stream, segment.last, now, limit],
            )
            return int(cursor.fetchone()[0])
    if now > timezone.now() + timedelta(minutes=1):
        raise PurgeRefusedError(f"{now.isoformat()} is ahead of the clock")
    cutoff = now - STREAM_RETENTION[Stream(segment.stream)]
    sealed = AuditCheckpoint.objects.filter(stream=segment.stream, position=segment.last)
    sealed_at = sealed.order_by("created_at").values_list("created_at", flat=True).first()
    if sealed_at is None or sealed_at > cutoff:
        raise PurgeRefusedError(f"the {segment.stream} segment through {segment.last} is not due")
    batch = list(
        AuditEntry.objects.filter(stream=segment.stream, position__lte=segment.last)
        .order_by("position")
        .values_list("pk", "created_at")[:limit]
    )
    if any(created_at > cutoff for _, created_at in batch):
        raise PurgeRefusedError(f"an entry of {segment.stream} through {segment.last} is not due")
    deleted, _ = AuditEntry.objects.filter(pk__in=[pk for pk, _ in batch]).delete()
    return deleted


class SegmentRule(purges.RetentionRule):
    """Whole segments of one stream, once their checkpoint is older than ``period``."""

    counted_from = "the signing of the checkpoint that closes the segment"

    def __init__(self, *, stream: Stream, name: str, description: str) -> None:
        self.stream = stream
        self.name = name
        self.description = description
        self.period = STREAM_RETENTION[stream]

    def forecast(self, now: datetime) -> purges.Forecast:
        cutoff = self.cutoff(now)
        held_targets = purges.held_targets()
        due = 0
        held: Counter[str] = Counter()
        blocked_by: str | None = None
        for segment in segments(self.stream):
            if segment.sealed_at > cutoff:
                return purges.Forecast(due, dict(held), segment.sealed_at + self.period)
            # Oldest first: a held segment postpones every one after it.
            blocked_by = blocked_by or _hold_on(segment, held_targets)
            if blocked_by:
                held[blocked_by] += segment.rows
            else:
                due += segment.rows
        return purges.Forecast(due, dict(held), None)

    def _next(self, now: datetime) -> Segment | None:
        segment = next(segments(self.stream), None)
        if segment is None or segment.sealed_at > self.cutoff(now):
            return None
        if _hold_on(segment, purges.held_targets()):
            return None
        return segment

    def purge_batch(self, now: datetime, limit: int) -> int:
        """One transaction: the oldest due segment's oldest ``limit`` entries. The
        purge's start is recorded with its first batch (a gap is explained only by a
        purge that was started), its end with its last."""
        with transaction.atomic():
            segment = self._next(now)
            if segment is None:
                return 0
            started = _started(segment)
            if started is None:
                started = record(
                    PURGE_STARTED_ACTION,
                    category=Category.DATA,
                    actor=ACTOR,
                    data=self._purge_data(segment),
                )
            deleted = _delete(segment, now, limit)
            left = AuditEntry.objects.filter(stream=self.stream, position__lte=segment.last)
            if not left.exists():
                record(
                    PURGED_ACTION,
                    category=Category.DATA,
                    actor=ACTOR,
                    data={
                        "stream": segment.stream,
                        "through_position": segment.last,
                        "rows": started.data.get("rows"),
                    },
                )
            return deleted

    def _purge_data(self, segment: Segment) -> dict[str, Any]:
        return {
            "stream": segment.stream,
            "from_position": segment.first,
            "through_position": segment.last,
            "rows": segment.rows,
            "sealed_at": segment.sealed_at.isoformat(),
            "rule": self.name,
        }


class SecurityEventCountRule(purges.RowsRule):
    """The hourly counts of security events, deleted after 90 days."""

    name = "audit.security_event_counts"
    description = "Hourly counts of failed sign-ins and lockouts, deleted."
    period = timedelta(days=SECURITY_EVENT_COUNT_DAYS)
    counted_from = "the hour counted"
    clock = "hour"

    def candidates(self) -> QuerySet[Any]:
        return SecurityEventCount.objects.all()

    def purge_rows(self, rows: QuerySet[Any], now: datetime) -> int:
        deleted, _ = rows.delete()
        if deleted:
            record(
                "audit.security_event_counts.purged",
                category=Category.SECURITY,
                actor=ACTOR,
                data={"rows": deleted, "before": self.cutoff(now).isoformat()},
            )
        return deleted


SECURITY_SEGMENTS = purges.register(
    SegmentRule(
        stream=Stream.SECURITY,
        name="audit.security_segments",
        description="Audit log segments of security and access entries, deleted.",
    )
)
TRANSACTION_SEGMENTS = purges.register(
    SegmentRule(
        stream=Stream.TRANSACTION,
        name="audit.transaction_segments",
        description="Audit log segments of transaction and data entries, deleted.",
    )
)
SECURITY_EVENT_COUNTS = purges.register(SecurityEventCountRule())


def segments_purge(
    stream: Stream, *, now: datetime | None = None, batch_size: int | None = None
) -> int:
    """Purge every due segment of ``stream``, batch after batch (each its own short
    transaction: a run that is killed resumes on the next); returns the rows."""
    rule = SECURITY_SEGMENTS if stream == Stream.SECURITY else TRANSACTION_SEGMENTS
    moment = now or timezone.now()
    limit = batch_size or settings.RETENTION_BATCH_SIZE
    total = 0
    while deleted := rule.purge_batch(moment, limit):
        total += deleted
    return total


def security_event_counts_purge(*, now: datetime | None = None) -> int:
    """Delete the hourly counts older than SECURITY_EVENT_COUNT_DAYS; returns how many.
    Each batch that deletes something is audited."""
    moment = now or timezone.now()
    total = 0
    while deleted := SECURITY_EVENT_COUNTS.purge_batch(moment, settings.RETENTION_BATCH_SIZE):
        total += deleted
    return total
