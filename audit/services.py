"""Writing, verifying and redacting the audit trail."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
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
from audit.sequencer import (
    IntegrationDelay,
    integrate_after_commit,
    integrate_pending,
    integration_delay,
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


def stream_of(category: Category | str) -> Stream:
    """The stream (retention class) an entry of ``category`` is chained in."""
    return STREAM_OF_CATEGORY[Category(category)]


# Category value -> stream value, for record(): Category.values builds a list on every
# read, and Category(...) looks the member up, in every audited transaction.
_STREAM_OF_VALUE = {str(category): str(stream) for category, stream in STREAM_OF_CATEGORY.items()}


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
    ``transaction``. It is written queued, with no shared lock (its contents and their
    leaf digest, no sequence or position yet): once the caller's transaction commits,
    the sequencer integrates it into the chain (``audit.sequencer``), usually within
    milliseconds. The entry returned is as written, queued (``refresh_from_db`` once
    the caller's transaction committed shows its place).
    """
    stream = _STREAM_OF_VALUE.get(str(category)) if isinstance(category, str) else None
    if stream is None:
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

    fields: dict[str, Any] = {
        "stream": stream,
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
    }
    entry = _insert(
        {**fields, "personal_data": sealed_personal, "leaf_hash": chain.leaf_hash(fields)}
    )
    integrate_after_commit()
    return entry


# The columns record() writes; the others (the place, the redaction) start empty.
INSERTED = (*chain.LEAF_FIELDS, "personal_data", "leaf_hash", "previous_hash")


@cache
def _inserted_fields() -> list[models.Field[Any, Any]]:
    by_name = {field.name: field for field in AuditEntry._meta.concrete_fields}
    return [by_name[name] for name in INSERTED]


@cache
def _prepared_fields() -> list[tuple[str, models.Field[Any, Any], bool]]:
    """Each inserted column's name, its field, and whether the field is a plain
    CharField: one prepares a str as itself (to_python is str()), so _insert calls
    only the others (the time, the JSON, the address, the encrypted personal data),
    and a CharField given anything but a str."""
    return [(field.name, field, type(field) is models.CharField) for field in _inserted_fields()]


@cache
def _all_columns() -> tuple[str, ...]:
    return tuple(field.attname for field in AuditEntry._meta.concrete_fields)


@cache
def _insert_sql() -> str:
    table = connection.ops.quote_name(AuditEntry._meta.db_table)
    columns = ", ".join(
        connection.ops.quote_name(str(field.column)) for field in _inserted_fields()
    )
    values = ", ".join(["%s"] * len(INSERTED))
    # Names from the model's own metadata, values as parameters: nothing from outside.
    return f"INSERT INTO {table} ({columns}) VALUES ({values}) RETURNING id"  # noqa: S608


def _insert(values: dict[str, Any]) -> AuditEntry:
    """One INSERT, its statement built once (PostgreSQL): the ORM's create() took
    longer compiling it than the database took running it, in every audited
    transaction. Each value a field would change is still prepared by it (the
    personal data's encryption, the JSON's adaptation, the time, the address)."""
    values = {"previous_hash": "", **values}
    if connection.vendor != "postgresql":
        return AuditEntry.objects.create(**values)
    params = []
    for name, model_field, plain_text in _prepared_fields():
        value = values[name]
        if not (plain_text and value.__class__ is str):
            value = model_field.get_db_prep_save(value, connection)
        params.append(value)
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(), params)
        (pk,) = cursor.fetchone()
    values["id"] = pk
    # As the ORM builds a row it read (every column, in order): what create() would
    # have returned, without keyword matching for each of twenty fields.
    columns = _all_columns()
    return AuditEntry.from_db(connection.alias, columns, [values.get(name) for name in columns])


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
    ``count_this_hour`` added to ``data``). The rest are not entries: a
    password-guessing run would otherwise fill the log (and a year of its retention)
    with noise. Returns this hour's count.
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
    """Every stream verified; ``delay`` is the integration queue as verification
    ended (entries written since it integrated what was committed)."""

    entries: int
    broken_at: AuditEntry | None = None
    reason: str = ""
    streams: tuple[StreamReport, ...] = field(default=())
    delay: IntegrationDelay | None = None

    @property
    def ok(self) -> bool:
        return not self.reason


def _personal_data_problem(sealed: str | None, digest: str, redacted_at: Any) -> str:
    if sealed is None:
        if digest and redacted_at is None:
            return "personal data is missing but was never redacted"
        return ""
    try:
        envelope = json.loads(sealed)
    except ValueError:
        return "personal data is not the JSON that was sealed"
    if chain.digest(envelope) != digest:
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
    after = entry.sequence or 0
    return [number for number in listed if isinstance(number, int) and number < after]


def _redaction_problem(count: int) -> ChainReport | None:
    """The first entry whose personal data is gone with no redaction stamp, or with no
    later redaction entry naming it.

    A query over the redacted entries (a partial index holds them), not the walk, so
    that an incremental run still sees a redaction made behind its back in an entry
    verified long ago.
    """
    gone: dict[int, Any] = {
        sequence: stamp
        for sequence, stamp in AuditEntry.objects.filter(personal_data__isnull=True)
        .exclude(personal_data_digest="")
        .values_list("sequence", "personal_data_redacted_at")
        if sequence is not None  # queued: verify_chain checks it against its leaf
    }
    if not gone:
        return None
    listed: set[int] = set()
    redactions = AuditEntry.objects.filter(action=REDACTED_ACTION, sequence__isnull=False)
    for redaction in redactions.defer("personal_data"):
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
        AuditEntry.objects.filter(stream=stream, position__isnull=False)
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
            AuditEntry.objects.filter(stream=stream, position__isnull=False)
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


# The columns a walk reads, as tuples: the leaf's fields together, in LEAF_FIELDS
# order, so that a row's slice is the leaf's payload. No model instances: a walk reads
# the whole log, and building one per entry cost more than hashing it.
WALK_COLUMNS = (
    "id",
    "position",
    "sequence",
    "previous_hash",
    "entry_hash",
    "leaf_hash",
    *chain.LEAF_FIELDS,
    "personal_data",
    "personal_data_redacted_at",
)
_LEAF = slice(6, 6 + len(chain.LEAF_FIELDS))
_STREAM = 6 + chain.LEAF_FIELDS.index("stream")
_SEALED = 6 + len(chain.LEAF_FIELDS)
Row = Sequence[Any]


def row_hash_matches(row: Row) -> bool:
    """Whether a walked row's ``entry_hash`` is the one its contents and place give
    (either format: see audit.chain)."""
    _pk, position, sequence, previous, stored, leaf = row[:6]
    if not leaf:  # chained before the sequencer: one digest over contents and link
        fields = dict(zip(chain.LEAF_FIELDS, row[_LEAF], strict=True))
        fields["sequence"], fields["previous_hash"] = sequence, previous
        return bool(chain.entry_hash(fields) == stored)
    if chain.leaf_hash_of_values(row[_LEAF]) != leaf:
        return False
    return bool(chain.linked_hash(leaf, sequence, row[_STREAM], position, previous) == stored)


def _checkpoint_problem(checkpoint: AuditCheckpoint, entry_hash: str, walk: _Walk) -> str:
    problem = _signature_problem(checkpoint, walk.trusted)
    if problem:
        return f"{checkpoint}: {problem}"
    if checkpoint.entry_hash != entry_hash:
        return f"entry_hash is not the one {checkpoint} signed (the chain was rewritten)"
    return ""


def _row_problem(row: Row, walk: _Walk, expected_position: int) -> str:
    position, previous_hash, entry_hash = row[1], row[3], row[4]
    if position != expected_position:
        return (
            f"position {expected_position} of the {walk.stream} stream is missing "
            f"(found {position})"
        )
    if walk.previous is not None and previous_hash != walk.previous:
        return "previous_hash does not match the entry before it"
    if not row_hash_matches(row):
        return "entry_hash does not match the entry's contents"
    checkpoint = walk.checkpoints.get(position)
    problem = _checkpoint_problem(checkpoint, entry_hash, walk) if checkpoint else ""
    if problem:
        return problem
    sealed, redacted_at = row[_SEALED], row[_SEALED + 1]
    if sealed is None and not row[_SEALED - 1]:
        return ""  # no personal part: the common case
    return _personal_data_problem(sealed, row[_SEALED - 1], redacted_at)


def _rows(stream: str, start: int, batch_size: int) -> Iterator[Row]:
    if connection.vendor == "postgresql":
        return _rows_postgresql(stream, start, batch_size)
    return (
        AuditEntry.objects.filter(stream=stream, position__gte=start)
        .order_by("position")
        .values_list(*WALK_COLUMNS)
        .iterator(chunk_size=batch_size)
    )


# PostgreSQL reads the walk's columns raw: ``created_at`` already in the text the hash
# covers (chain._utc_text: isoformat of the UTC time) and no converter per value, but
# json.loads of ``data`` and the decryption of the rows that have personal data: a
# third of the walk's time went to the ORM's converters.
_WALK_SQL = """
SELECT {columns} FROM audit_auditentry
WHERE stream = %s AND position >= %s ORDER BY position
""".format(
    columns=", ".join(
        """to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""
        if column == "created_at"
        else column
        for column in WALK_COLUMNS
    )
)
_DATA = 6 + chain.LEAF_FIELDS.index("data")


_json_document = json.JSONDecoder().raw_decode


def _json_loads(text: str) -> Any:
    """json.loads of jsonb's output, which never has whitespace around the document:
    the decoder's document call without json.loads' checks and whitespace scans, or
    json.loads itself (and its error) for anything else."""
    try:
        value, end = _json_document(text)
    except (ValueError, TypeError):
        end = -1
    return value if end == len(text) else json.loads(text)


def _rows_postgresql(stream: str, start: int, batch_size: int) -> Iterator[Row]:
    # The field's decryption (StrictDecryptMixin: UndecryptableValueError, as the ORM).
    sealed_field: Any = AuditEntry._meta.get_field("personal_data")
    with connection.chunked_cursor() as cursor:
        cursor.execute(_WALK_SQL, [stream, start])
        while batch := cursor.fetchmany(batch_size):
            for raw in batch:
                row = list(raw)
                row[_DATA] = _json_loads(row[_DATA])
                if row[_SEALED] is not None:
                    row[_SEALED] = sealed_field.from_db_value(row[_SEALED], None, connection)
                yield row


def _entry(pk: int) -> AuditEntry:
    return AuditEntry.objects.defer("personal_data").get(pk=pk)


def _unreadable(stream: str, after: int) -> AuditEntry | None:
    return (
        AuditEntry.objects.filter(stream=stream, position__gt=after)
        .order_by("position")
        .defer("personal_data")
        .first()
    )


def _walk(walk: _Walk, batch_size: int) -> StreamReport:
    """Read the stream from ``walk.start`` to its end, link by link."""
    # Entries integrated while the walk runs are missing from its snapshot yet counted
    # by a later read of the head: bracket the walk between two head reads.
    head_before = _stream_head_position(walk.stream)
    expected = walk.start
    count = 0
    last: Row | None = None
    anchored = walk.previous is not None
    rows = _rows(walk.stream, walk.start, batch_size)
    while True:
        try:
            row = next(rows)
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
        # The common row, checked inline: in its place, linked, its hash right, no
        # checkpoint at it and no personal data. Any other goes through _row_problem,
        # which makes the same checks and the rest.
        _pk, position, sequence, previous_hash, stored, leaf = row[:6]
        if (
            position != expected
            or (walk.previous is not None and previous_hash != walk.previous)
            or not leaf
            or row[_SEALED] is not None
            or row[_SEALED - 1]
            or position in walk.checkpoints
            or chain.leaf_hash_of_values(row[_LEAF]) != leaf
            or chain.linked_hash(leaf, sequence, row[_STREAM], position, previous_hash) != stored
        ):
            reason = _row_problem(row, walk, expected)
            if reason:
                entry = _entry(row[0])
                return StreamReport(walk.stream, walk.since, walk.start, count, entry, reason)
            anchored = anchored or position in walk.checkpoints
        walk.previous = stored
        last = row
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
        _remember(walk.stream, position=last[1], entry_hash=last[4])
    return report or StreamReport(walk.stream, walk.since, walk.start, count)


def _end_problem(
    walk: _Walk,
    *,
    head_before: int,
    stored: int,
    count: int,
    anchored: bool,
    last: Row | None,
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
            _entry(last[0]) if last else None,
        )
    return None


def _remember(stream: str, *, position: int, entry_hash: str) -> None:
    """Store how far ``stream`` verifies (only ever forward)."""
    now = timezone.now()
    point = AuditVerifiedPoint.objects.filter(stream=stream).first()
    if point is None:
        AuditVerifiedPoint.objects.bulk_create(
            [
                AuditVerifiedPoint(
                    stream=stream, position=position, entry_hash=entry_hash, verified_at=now
                )
            ],
            ignore_conflicts=True,
        )
        return
    AuditVerifiedPoint.objects.filter(pk=point.pk, position__lte=position).update(
        position=position, entry_hash=entry_hash, verified_at=now
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
        AuditEntry.objects.filter(sequence__isnull=False)
        .order_by("-sequence")
        .values_list("sequence", flat=True)
        .first()
        or 0
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


def _queued_problem(count: int) -> ChainReport | None:
    """The first queued entry whose contents are not the ones its leaf digest was
    computed from (changed while it waited to be integrated)."""
    queued = (
        AuditEntry.objects.filter(sequence__isnull=True)
        .order_by("id")
        .values_list("id", "leaf_hash", *chain.LEAF_FIELDS)
    )
    for pk, leaf, *values in queued.iterator(chunk_size=2000):
        if chain.leaf_hash(dict(zip(chain.LEAF_FIELDS, values, strict=True))) != leaf:
            return ChainReport(
                count,
                _entry(pk),
                "a queued entry's contents do not match the leaf digest written with it",
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

    First it integrates what is committed and still queued (waiting for the
    sequencer's lock if a batch is being written), so that the walk covers it; what
    is queued after that is checked against its leaf digest, and counted with its
    age in ``delay``.
    """
    from audit.checkpoints import trusted_keys

    trusted = trusted_keys(extra_public_keys)
    integrate_pending(wait=True)
    head_before = _head_sequence()
    reports = tuple(
        verify_stream(stream, full=full, trusted=trusted, batch_size=batch_size)
        for stream in STREAMS
    )
    count = sum(report.entries for report in reports)
    delay = integration_delay()
    for report in reports:
        if not report.ok:
            return ChainReport(count, report.broken_at, report.reason, reports, delay)
    problem = (
        _global_head_problem(count, head_before)
        or _redaction_problem(count)
        or _queued_problem(count)
    )
    if problem:
        return ChainReport(problem.entries, problem.broken_at, problem.reason, reports, delay)
    return ChainReport(count, streams=reports, delay=delay)


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
        # Only integrated entries have a sequence for the record to name.
        integrate_pending(wait=True)
        redacted = AuditEntry.objects.select_for_update().filter(
            pk__in=ids, personal_data__isnull=False
        )
        sequences = sorted(
            sequence
            for sequence in redacted.values_list("sequence", flat=True)
            if sequence is not None
        )
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
            "queued": report.delay.queued if report.delay else 0,
            "streams": {
                stream.stream: {"since": stream.since, "entries": stream.entries}
                for stream in report.streams
            },
        },
    )
    return report
