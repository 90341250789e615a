"""Writing, verifying and redacting the audit trail."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import F
from django.utils import timezone

from audit import chain
from audit.categories import ActorType, Category
from audit.models import GENESIS_HASH, AuditChainHead, AuditEntry, SecurityEventCount
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

    Writers serialise on the chain head's row lock, which is held until the
    caller's transaction ends: keep audited transactions short.
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

    with transaction.atomic():
        head = locked_head()
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
            "previous_hash": head.entry_hash,
        }
        fields["entry_hash"] = chain.entry_hash(fields)
        entry = AuditEntry.objects.create(personal_data=sealed_personal, **fields)
        head.sequence = entry.sequence
        head.entry_hash = entry.entry_hash
        head.save(update_fields=["sequence", "entry_hash"])
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


@dataclass(frozen=True)
class ChainReport:
    entries: int
    broken_at: AuditEntry | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason


def _entry_fields(entry: AuditEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in chain.HASHED_FIELDS}


REDACTED_ACTION = "audit.personal_data.redacted"


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


def _unreadable_entry(after_sequence: int) -> AuditEntry | None:
    return (
        AuditEntry.objects.filter(sequence__gt=after_sequence)
        .order_by("sequence")
        .defer("personal_data")
        .first()
    )


def _entry_problem(entry: AuditEntry, expected_sequence: int, expected_previous: str) -> str:
    if entry.sequence != expected_sequence:
        return f"sequence {expected_sequence} is missing (found {entry.sequence})"
    if entry.previous_hash != expected_previous:
        return "previous_hash does not match the entry before it"
    if chain.entry_hash(_entry_fields(entry)) != entry.entry_hash:
        return "entry_hash does not match the entry's contents"
    return _personal_data_problem(entry)


def _listed_sequences(entry: AuditEntry) -> list[int]:
    """The sequences a redaction entry says it redacted (earlier ones only count)."""
    listed = entry.data.get("sequences") if isinstance(entry.data, dict) else None
    if not isinstance(listed, list):
        return []
    return [number for number in listed if isinstance(number, int) and number < entry.sequence]


def _unrecorded_redaction(unlisted: set[int], count: int) -> ChainReport | None:
    """The first entry whose personal data is gone with no redaction entry naming it."""
    if not unlisted:
        return None
    entry = AuditEntry.objects.defer("personal_data").get(sequence=min(unlisted))
    return ChainReport(
        count,
        entry,
        f"personal data was removed but no later {REDACTED_ACTION} entry lists it "
        "(a redaction nobody recorded)",
    )


def verify_chain(*, batch_size: int = 2000) -> ChainReport:
    """Walk the whole chain in order and report the first entry that does not hold.

    Beyond the links and hashes: an entry whose personal data is gone must be listed
    by a later ``audit.personal_data.redacted`` entry (which names who redacted it
    and why); one nobody recorded is reported after the walk, as the earliest such.
    """
    # Entries committed while the walk runs are missing from its snapshot yet counted
    # by a later read of the head: bracket the walk between two head reads.
    head_before = _head_sequence()
    expected_previous = GENESIS_HASH
    expected_sequence = 1
    count = 0
    # Redacted entries not yet listed by a redaction entry (sequences only: the walk
    # keeps no entries in memory).
    unlisted: set[int] = set()
    entries = AuditEntry.objects.order_by("sequence").iterator(chunk_size=batch_size)
    while True:
        try:
            entry = next(entries)
        except StopIteration:
            break
        except UndecryptableValueError as exc:
            unreadable = _unreadable_entry(expected_sequence - 1)
            if unreadable is None:
                return ChainReport(count, None, f"an entry after #{count} cannot be read: {exc}")
            return ChainReport(count + 1, unreadable, f"personal data cannot be read: {exc}")
        count += 1
        reason = _entry_problem(entry, expected_sequence, expected_previous)
        if reason:
            return ChainReport(count, entry, reason)
        if entry.personal_data is None and entry.personal_data_digest:
            unlisted.add(entry.sequence)
        if entry.action == REDACTED_ACTION:
            unlisted.difference_update(_listed_sequences(entry))
        expected_previous = entry.entry_hash
        expected_sequence += 1

    stored = expected_sequence - 1
    if stored < head_before:
        return ChainReport(
            count,
            None,
            f"the chain head says {head_before} entries but {stored} "
            "are stored (entries were removed from the end)",
        )
    head_after = _head_sequence()
    if stored > head_after:
        return ChainReport(
            count,
            None,
            f"{stored} entries are stored but the chain head says {head_after} "
            "(entries were added past the head, or the head was moved back)",
        )
    return _unrecorded_redaction(unlisted, count) or ChainReport(count)


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


def chain_verify(*, actor: Actor) -> ChainReport:
    """verify_chain on someone's request (the admin's button), audited with who asked
    and what came out."""
    report = verify_chain()
    record(
        "audit.chain.verified",
        category=Category.SECURITY,
        actor=actor,
        data={
            "ok": report.ok,
            "entries": report.entries,
            "broken_sequence": report.broken_at.sequence if report.broken_at else None,
            "reason": report.reason,
        },
    )
    return report
