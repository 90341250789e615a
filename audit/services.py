"""Writing, verifying and redacting the audit trail."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import F
from django.utils import timezone

from audit import chain
from audit.categories import ActorType, Category
from audit.models import (
    GENESIS_HASH,
    STREAM_OF_CATEGORY,
    AuditChainHead,
    AuditCheckpoint,
    AuditEntry,
    AuditStreamHead,
    AuditVerifiedPoint,
    SecurityEventCount,
    Stream,
)
from core.encryption import UndecryptableValueError
from core.http import current_client_ip, current_request_id, truncate_ip
from core.masking import scrub

logger = logging.getLogger(__name__)

Actor = models.Model | str | None


def _actor(actor: Actor) -> tuple[str, str]:
    if actor is None:
        return ActorType.ANONYMOUS, ""
    if isinstance(actor, str):
        return ActorType.SYSTEM, actor
    return ActorType.USER, str(actor.pk)


def _target(target: models.Model | tuple[str, Any] | None) -> tuple[str, str]:
    if target is None:
        return "", ""
    if isinstance(target, tuple):
        label, pk = target
        return label, str(pk)
    return target._meta.label_lower, str(target.pk)


def locked_head() -> AuditChainHead:
    """The chain head, locked until the caller's transaction ends."""
    head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
    if head is None:
        # First entry ever (or after a test flush): create the head, tolerating a race.
        AuditChainHead.objects.bulk_create([AuditChainHead(pk=1)], ignore_conflicts=True)
        head = AuditChainHead.objects.select_for_update().get(pk=1)
    return head


def locked_stream_head(stream: str) -> AuditStreamHead:
    """A stream's head, locked until the caller's transaction ends. Take the global
    head's lock first (``locked_head``): every writer locks in that order."""
    head = AuditStreamHead.objects.select_for_update().filter(stream=stream).first()
    if head is None:
        AuditStreamHead.objects.bulk_create([AuditStreamHead(stream=stream)], ignore_conflicts=True)
        head = AuditStreamHead.objects.select_for_update().get(stream=stream)
    return head


def stream_of(category: Category | str) -> Stream:
    """The stream (retention class) an entry of ``category`` is chained in."""
    return STREAM_OF_CATEGORY[Category(category)]


def record(
    action: str,
    *,
    category: Category | str,
    actor: Actor,
    target: models.Model | tuple[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    personal_data: dict[str, Any] | None = None,
    request_id: str | None = None,
    ip: str | None = None,
) -> AuditEntry:
    """Append one entry to the chain, inside the caller's transaction.

    ``action`` is namespaced (``accounts.user.created``). ``actor`` is the acting
    user, a system component's name (``"webhooks.stripe"``) or None for anonymous.
    ``data`` must hold no personal data (it is scrubbed regardless); anything
    personal goes in ``personal_data``, which is encrypted and can later be
    redacted without breaking the chain. The request id and the (truncated) client
    address default to the current request's.

    The entry is chained in its category's stream (``stream_of``): security and
    access entries in ``security``, transaction and data entries in
    ``transaction``. Writers serialise on the global head's row lock (then the
    stream head's), held until the caller's transaction ends: keep audited
    transactions short.
    """
    if category not in Category.values:
        raise ValueError(f"unknown audit category {category!r}")
    actor_type, actor_id = _actor(actor)
    target_type, target_id = _target(target)
    clean_data = chain.jsonable(scrub(data or {}))
    sealed_personal = None
    personal_digest = ""
    if personal_data:
        envelope = {"nonce": secrets.token_hex(16), "values": chain.jsonable(personal_data)}
        sealed_personal = chain.canonical(envelope).decode()
        personal_digest = chain.digest(envelope)

    stream = stream_of(category)
    with transaction.atomic():
        head = locked_head()
        stream_head = locked_stream_head(stream)
        fields: dict[str, Any] = {
            "sequence": head.sequence + 1,
            "created_at": timezone.now(),
            "actor_type": str(actor_type),
            "actor_id": actor_id,
            "action": action,
            "category": str(category),
            "target_type": target_type,
            "target_id": target_id,
            "data": clean_data,
            "request_id": request_id or current_request_id.get() or "",
            "ip": truncate_ip(ip or current_client_ip.get()),
            "personal_data_digest": personal_digest,
            "previous_hash": stream_head.entry_hash,
        }
        fields["entry_hash"] = chain.entry_hash(fields)
        entry = AuditEntry.objects.create(
            personal_data=sealed_personal,
            stream=str(stream),
            position=stream_head.position + 1,
            **fields,
        )
        head.sequence = entry.sequence
        head.entry_hash = entry.entry_hash
        head.save(update_fields=["sequence", "entry_hash"])
        stream_head.position = entry.position
        stream_head.entry_hash = entry.entry_hash
        stream_head.save(update_fields=["position", "entry_hash"])
    return entry


def _count_this_hour(action: str) -> int:
    """Add one to this hour's count of ``action`` and return it, in the caller's
    transaction: the row stays locked until it ends, so concurrent counts queue."""
    now = timezone.now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    rows = SecurityEventCount.objects.filter(action=action, hour=hour)
    if not rows.update(count=F("count") + 1, last_seen_at=now):
        try:
            with transaction.atomic():
                SecurityEventCount.objects.create(
                    action=action, hour=hour, count=1, last_seen_at=now
                )
        except IntegrityError:  # another writer created this hour's row first
            rows.update(count=F("count") + 1, last_seen_at=now)
    return rows.values_list("count", flat=True).get()


def record_capped(
    action: str,
    *,
    category: Category | str,
    actor: Actor,
    data: dict[str, Any] | None = None,
    personal_data: dict[str, Any] | None = None,
) -> int:
    """Count an event that can come in floods; audit only the first of each hour.

    Every call adds one to the hour's ``SecurityEventCount`` of ``action``; the first
    SECURITY_EVENT_AUDIT_LIMIT of the hour are also recorded (as ``record`` does, with
    ``count_this_hour`` added to ``data``). The rest skip the chain head's lock, which
    would otherwise make a password-guessing run hold up every audited write. Returns
    this hour's count.
    """
    with transaction.atomic():
        count = _count_this_hour(action)
        if count <= settings.SECURITY_EVENT_AUDIT_LIMIT:
            record(
                action,
                category=category,
                actor=actor,
                data={**(data or {}), "count_this_hour": count},
                personal_data=personal_data,
            )
    return count


REDACTED_ACTION = "audit.personal_data.redacted"
# A purge of a stream's segment, recorded in the transaction stream (so that a
# security purge's record outlives it): started before its first row goes, done
# with its last (audit.retention). A gap at a stream's start is explained only by a
# started purge.
PURGE_STARTED_ACTION = "audit.segment.purge_started"
PURGED_ACTION = "audit.segment.purged"
# Verification walks the streams in this order and reports the first break.
STREAMS = (Stream.TRANSACTION, Stream.SECURITY)


@dataclass(frozen=True)
class StreamReport:
    """One stream verified: from where (``since``), from which position, how many
    entries were read, and the first problem if any."""

    stream: str
    since: str
    start: int
    entries: int
    broken_at: AuditEntry | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason


@dataclass(frozen=True)
class ChainReport:
    entries: int
    broken_at: AuditEntry | None = None
    reason: str = ""
    streams: tuple[StreamReport, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.reason


def _entry_fields(entry: AuditEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in chain.HASHED_FIELDS}


def _personal_data_problem(entry: AuditEntry) -> str:
    if entry.personal_data is None:
        if entry.personal_data_digest and entry.personal_data_redacted_at is None:
            return "personal data is missing but was never redacted"
        return ""
    try:
        envelope = json.loads(entry.personal_data)
    except ValueError:
        return "personal data is not the JSON that was sealed"
    if chain.digest(envelope) != entry.personal_data_digest:
        return "personal data does not match its digest"
    return ""


def _head_sequence() -> int:
    head = AuditChainHead.objects.filter(pk=1).first()
    return head.sequence if head else 0


def _stream_head_position(stream: str) -> int:
    head = AuditStreamHead.objects.filter(stream=stream).first()
    return head.position if head else 0


def _listed_sequences(entry: AuditEntry) -> list[int]:
    """The sequences a redaction entry says it redacted (earlier ones only count)."""
    listed = entry.data.get("sequences") if isinstance(entry.data, dict) else None
    if not isinstance(listed, list):
        return []
    return [number for number in listed if isinstance(number, int) and number < entry.sequence]


def _redaction_problem(count: int) -> ChainReport | None:
    """The first entry whose personal data is gone with no redaction stamp, or with no
    later redaction entry naming it.

    A query over the redacted entries (a partial index holds them), not the walk, so
    that an incremental run still sees a redaction made behind its back in an entry
    verified long ago.
    """
    gone = dict(
        AuditEntry.objects.filter(personal_data__isnull=True)
        .exclude(personal_data_digest="")
        .values_list("sequence", "personal_data_redacted_at")
    )
    if not gone:
        return None
    listed: set[int] = set()
    for redaction in AuditEntry.objects.filter(action=REDACTED_ACTION).defer("personal_data"):
        listed.update(_listed_sequences(redaction))
    unstamped = {sequence for sequence, stamp in gone.items() if stamp is None}
    unlisted = set(gone) - listed
    first = min(unstamped | unlisted, default=None)
    if first is None:
        return None
    entry = AuditEntry.objects.defer("personal_data").get(sequence=first)
    if first in unstamped:
        return ChainReport(count, entry, "personal data is missing but was never redacted")
    return ChainReport(
        count,
        entry,
        f"personal data was removed but no later {REDACTED_ACTION} entry lists it "
        "(a redaction nobody recorded)",
    )


# How long each stream is kept (audit.retention and audit_purge_segment say the same).
STREAM_PERIODS = {"security": timedelta(days=365), "transaction": timedelta(days=7 * 365)}


def purged_through(stream: str) -> int:
    """The highest position of ``stream`` that a recorded purge set out to remove.

    A purge record counts only if it was written once its segment had expired (its
    closing checkpoint signed at least the stream's period before): a hand-made record
    cannot excuse entries deleted early."""
    period = STREAM_PERIODS.get(stream)
    started = AuditEntry.objects.filter(action=PURGE_STARTED_ACTION).values_list(
        "data", "created_at"
    )
    through = []
    for data, recorded_at in started:
        if not isinstance(data, dict) or data.get("stream") != stream or period is None:
            continue
        position = data.get("through_position")
        if not isinstance(position, int):
            continue
        sealed = (
            AuditCheckpoint.objects.filter(stream=stream, position=position)
            .order_by("created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        if sealed is not None and recorded_at >= sealed + period:
            through.append(position)
    return max(through, default=0)


@dataclass
class _Walk:
    """Where a stream's walk starts and what it must find on the way."""

    stream: str
    since: str
    start: int
    # The hash the first walked entry must link to; None when that entry's
    # predecessor was purged mid-segment (the checkpoint at the segment's end then
    # anchors the survivors: the walk must reach it).
    previous: str | None
    checkpoints: dict[int, AuditCheckpoint]
    trusted: dict[bytes, bytes]


def _checkpoints_from(stream: str, position: int) -> dict[int, AuditCheckpoint]:
    found: dict[int, AuditCheckpoint] = {}
    for checkpoint in AuditCheckpoint.objects.filter(stream=stream, position__gte=position):
        found.setdefault(checkpoint.position, checkpoint)
    return found


def _signature_problem(checkpoint: AuditCheckpoint, trusted: dict[bytes, bytes]) -> str:
    from audit.checkpoints import signature_problem

    return signature_problem(checkpoint, trusted)


def _full_start(stream: str, trusted: dict[bytes, bytes]) -> _Walk | StreamReport:
    """Genesis when nothing was purged; else the oldest surviving checkpoint (the one
    closing the last purged segment, or, mid-purge, the one closing the segment whose
    survivors remain)."""
    lowest = (
        AuditEntry.objects.filter(stream=stream)
        .order_by("position")
        .values_list("position", flat=True)
    ).first()
    head = _stream_head_position(stream)
    if lowest is None:
        lowest = head + 1
    if lowest == 1:
        return _Walk(stream, "genesis", 1, GENESIS_HASH, _checkpoints_from(stream, 1), trusted)
    gone = lowest - 1
    if purged_through(stream) < gone:
        first = AuditEntry.objects.filter(stream=stream, position=lowest).first()
        return StreamReport(
            stream,
            "genesis",
            1,
            0,
            first,
            f"positions 1 to {gone} of the {stream} stream are gone and no purge of "
            "them was started",
        )
    checkpoints = _checkpoints_from(stream, gone)
    anchor = checkpoints.pop(gone, None)
    if anchor is not None:
        problem = _signature_problem(anchor, trusted)
        if problem:
            return StreamReport(stream, f"checkpoint at {gone}", lowest, 0, None, problem)
        return _Walk(
            stream, f"checkpoint at {gone}", lowest, anchor.entry_hash, checkpoints, trusted
        )
    closing = min(checkpoints, default=None)
    since = f"checkpoint at {closing} (purge unfinished)"
    return _Walk(stream, since, lowest, None, checkpoints, trusted)


def _incremental_start(stream: str, trusted: dict[bytes, bytes]) -> _Walk | StreamReport | None:
    """From the last verified point, once its entry is seen to hold the hash verified
    then; None (start in full) when there is no point or its entry was purged."""
    point = AuditVerifiedPoint.objects.filter(stream=stream).first()
    if point is None:
        return None
    entry = (
        AuditEntry.objects.filter(stream=stream, position=point.position)
        .defer("personal_data")
        .first()
    )
    since = f"verified point at {point.position}"
    if entry is None:
        lowest = (
            AuditEntry.objects.filter(stream=stream)
            .order_by("position")
            .values_list("position", flat=True)
            .first()
        )
        if lowest is None or lowest > point.position:
            return None  # purged since: start from the oldest surviving checkpoint
        return StreamReport(
            stream,
            since,
            point.position,
            0,
            None,
            f"the {stream} entry at position {point.position}, verified on "
            f"{point.verified_at:%Y-%m-%d %H:%M} UTC, is gone",
        )
    if entry.entry_hash != point.entry_hash:
        return StreamReport(
            stream,
            since,
            point.position,
            1,
            entry,
            f"entry_hash is not the one verified on {point.verified_at:%Y-%m-%d %H:%M} UTC",
        )
    missing = _missing_before(stream, point.position)
    if missing:
        return StreamReport(stream, since, point.position, 0, None, missing)
    checkpoints = _checkpoints_from(stream, point.position + 1)
    return _Walk(stream, since, point.position + 1, point.entry_hash, checkpoints, trusted)


def _missing_before(stream: str, position: int) -> str:
    """What is gone from the part of ``stream`` already verified, found by counting
    (an index-only scan, cheap beside a walk): an entry deleted from the middle, or
    from the start with no expired purge on record. The incremental walk reads only
    what is new, so this is what catches a deletion behind the verified point."""
    verified = AuditEntry.objects.filter(stream=stream, position__lte=position)
    lowest = verified.order_by("position").values_list("position", flat=True).first()
    if lowest is None:
        return f"the {stream} stream's entries up to position {position} are gone"
    if lowest > 1 and purged_through(stream) < lowest - 1:
        return (
            f"the {stream} stream starts at position {lowest}: entries before it were "
            "removed, and no purge of an expired segment accounts for them"
        )
    stored = verified.count()
    if stored != position - lowest + 1:
        return (
            f"{position - lowest + 1 - stored} entries of the {stream} stream between "
            f"positions {lowest} and {position} are missing"
        )
    return ""


def _entry_problem(entry: AuditEntry, walk: _Walk, expected_position: int) -> str:
    if entry.position != expected_position:
        return (
            f"position {expected_position} of the {walk.stream} stream is missing "
            f"(found {entry.position})"
        )
    if walk.previous is not None and entry.previous_hash != walk.previous:
        return "previous_hash does not match the entry before it"
    if chain.entry_hash(_entry_fields(entry)) != entry.entry_hash:
        return "entry_hash does not match the entry's contents"
    checkpoint = walk.checkpoints.get(entry.position)
    if checkpoint is not None:
        problem = _signature_problem(checkpoint, walk.trusted)
        if problem:
            return f"{checkpoint}: {problem}"
        if checkpoint.entry_hash != entry.entry_hash:
            return f"entry_hash is not the one {checkpoint} signed (the chain was rewritten)"
    return _personal_data_problem(entry)


def _entries(stream: str, start: int, batch_size: int) -> Iterator[AuditEntry]:
    return (
        AuditEntry.objects.filter(stream=stream, position__gte=start)
        .order_by("position")
        .iterator(chunk_size=batch_size)
    )


def _unreadable(stream: str, after: int) -> AuditEntry | None:
    return (
        AuditEntry.objects.filter(stream=stream, position__gt=after)
        .order_by("position")
        .defer("personal_data")
        .first()
    )


def _walk(walk: _Walk, batch_size: int) -> StreamReport:
    """Read the stream from ``walk.start`` to its end, link by link."""
    # Entries committed while the walk runs are missing from its snapshot yet counted
    # by a later read of the head: bracket the walk between two head reads.
    head_before = _stream_head_position(walk.stream)
    expected = walk.start
    count = 0
    last: AuditEntry | None = None
    anchored = walk.previous is not None
    entries = _entries(walk.stream, walk.start, batch_size)
    while True:
        try:
            entry = next(entries)
        except StopIteration:
            break
        except UndecryptableValueError as exc:
            unreadable = _unreadable(walk.stream, expected - 1)
            return StreamReport(
                walk.stream,
                walk.since,
                walk.start,
                count + (unreadable is not None),
                unreadable,
                f"personal data cannot be read: {exc}",
            )
        count += 1
        reason = _entry_problem(entry, walk, expected)
        if reason:
            return StreamReport(walk.stream, walk.since, walk.start, count, entry, reason)
        anchored = anchored or entry.position in walk.checkpoints
        walk.previous = entry.entry_hash
        last = entry
        expected += 1
    report = _end_problem(
        walk,
        head_before=head_before,
        stored=expected - 1,
        count=count,
        anchored=anchored,
        last=last,
    )
    if report is None and last is not None:
        _remember(walk.stream, last)
    return report or StreamReport(walk.stream, walk.since, walk.start, count)


def _end_problem(
    walk: _Walk,
    *,
    head_before: int,
    stored: int,
    count: int,
    anchored: bool,
    last: AuditEntry | None,
) -> StreamReport | None:
    def broken(reason: str, at: AuditEntry | None = None) -> StreamReport:
        return StreamReport(walk.stream, walk.since, walk.start, count, at, reason)

    if not anchored and count:
        first = AuditEntry.objects.filter(stream=walk.stream, position=walk.start).first()
        return broken(
            f"the {walk.stream} entries left by an unfinished purge reach no checkpoint "
            "that anchors them",
            first,
        )
    if stored < head_before:
        return broken(
            f"the {walk.stream} stream's head is at position {head_before} but its last "
            f"stored entry is at {stored} (entries were removed from the end)"
        )
    head_after = _stream_head_position(walk.stream)
    if stored > head_after:
        return broken(
            f"the {walk.stream} stream's last entry is at position {stored} but its head "
            f"says {head_after} (entries were added past the head, or the head was "
            "moved back)",
            last,
        )
    return None


def _remember(stream: str, entry: AuditEntry) -> None:
    """Store how far ``stream`` verifies (only ever forward)."""
    now = timezone.now()
    point = AuditVerifiedPoint.objects.filter(stream=stream).first()
    if point is None:
        AuditVerifiedPoint.objects.bulk_create(
            [
                AuditVerifiedPoint(
                    stream=stream,
                    position=entry.position,
                    entry_hash=entry.entry_hash,
                    verified_at=now,
                )
            ],
            ignore_conflicts=True,
        )
        return
    AuditVerifiedPoint.objects.filter(pk=point.pk, position__lte=entry.position).update(
        position=entry.position, entry_hash=entry.entry_hash, verified_at=now
    )


def verify_stream(
    stream: str, *, full: bool, trusted: dict[bytes, bytes], batch_size: int = 2000
) -> StreamReport:
    """Verify one stream: in full from genesis or the oldest surviving checkpoint,
    or incrementally from the last verified point (falling back to full when there is
    none). Every checkpoint passed on the way must be signed by a trusted key and
    name the hash found at its position."""
    start = None if full else _incremental_start(stream, trusted)
    if start is None:
        start = _full_start(stream, trusted)
    if isinstance(start, StreamReport):
        return start
    return _walk(start, batch_size)


def _global_head_problem(count: int, head_before: int) -> ChainReport | None:
    """The global sequence: whoever forges entries past the head, or moves it back,
    would have new entries collide with theirs."""
    stored = (
        AuditEntry.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0
    )
    head_after = _head_sequence()
    if stored > head_after:
        entry = AuditEntry.objects.defer("personal_data").get(sequence=stored)
        return ChainReport(
            count,
            entry,
            f"entry #{stored} is stored but the chain head says {head_after} "
            "(entries were added past the head, or the head was moved back)",
        )
    if stored < head_before:
        # Caught per stream too; kept for a table emptied of every stream's end.
        return ChainReport(
            count,
            None,
            f"the chain head says #{head_before} but the last stored entry is #{stored} "
            "(entries were removed from the end)",
        )
    return None


def verify_chain(
    *, batch_size: int = 2000, full: bool = True, extra_public_keys: Iterable[str] = ()
) -> ChainReport:
    """Verify every stream and report the first entry that does not hold.

    ``full`` walks each stream from genesis, or from its oldest surviving checkpoint
    when old segments were purged; otherwise each stream is read from where it was
    last verified, so that an hourly run reads only what is new. Beyond the links
    and hashes: every checkpoint passed must carry a good signature and the hash at
    its position; a gap at a stream's start must be a purge that was started; and an
    entry whose personal data is gone must be listed by a later
    ``audit.personal_data.redacted`` entry (checked over the whole table in both
    modes, from the redacted entries only).
    """
    from audit.checkpoints import trusted_keys

    trusted = trusted_keys(extra_public_keys)
    head_before = _head_sequence()
    reports = tuple(
        verify_stream(stream, full=full, trusted=trusted, batch_size=batch_size)
        for stream in STREAMS
    )
    count = sum(report.entries for report in reports)
    for report in reports:
        if not report.ok:
            return ChainReport(count, report.broken_at, report.reason, reports)
    problem = _global_head_problem(count, head_before) or _redaction_problem(count)
    if problem:
        return ChainReport(problem.entries, problem.broken_at, problem.reason, reports)
    return ChainReport(count, streams=reports)


def redact_personal_data(*, entries: Iterable[AuditEntry], actor: Actor, reason: str) -> int:
    """Erase the personal-data part of entries (a data-subject erasure).

    The chain still verifies: the hash covers only the part's digest. The
    redaction is itself recorded, naming ``actor``, ``reason`` and the sequences
    redacted: verify_chain reports any redacted entry that no such record lists.
    """
    if actor is None or not reason.strip():
        raise ValueError("a redaction names who did it and why (both are audited)")
    ids = [entry.pk for entry in entries]
    with transaction.atomic():
        redacted = AuditEntry.objects.select_for_update().filter(
            pk__in=ids, personal_data__isnull=False
        )
        sequences = sorted(redacted.values_list("sequence", flat=True))
        count = AuditEntry.objects.filter(sequence__in=sequences).update(
            personal_data=None, personal_data_redacted_at=timezone.now()
        )
        # Which entries, so that a redaction nobody recorded stands out.
        record(
            REDACTED_ACTION,
            category=Category.DATA,
            actor=actor,
            data={"entries": count, "sequences": sequences, "reason": reason},
        )
    return count


def chain_verify(*, actor: Actor, full: bool = True) -> ChainReport:
    """verify_chain on someone's request (the admin's button, in full), audited with
    who asked and what came out."""
    report = verify_chain(full=full)
    record(
        "audit.chain.verified",
        category=Category.SECURITY,
        actor=actor,
        data={
            "ok": report.ok,
            "entries": report.entries,
            "broken_sequence": report.broken_at.sequence if report.broken_at else None,
            "reason": report.reason,
            "full": full,
            "streams": {
                stream.stream: {"since": stream.since, "entries": stream.entries}
                for stream in report.streams
            },
        },
    )
    return report
