"""What someone with the database owner's rights can do: switch the append-only
triggers off and write to the tables directly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

from audit import chain
from audit.models import AuditChainHead, AuditEntry, AuditStreamHead

TRIGGERS = {
    "audit_auditentry": "audit_entry_append_only",
    "audit_auditcheckpoint": "audit_checkpoint_append_only",
}


@contextmanager
def trigger_disabled(table: str = "audit_auditentry") -> Iterator[None]:
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {TRIGGERS[table]}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER {TRIGGERS[table]}")


def execute(sql: str, params: list[object] | None = None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.rowcount


def rehashed(entry: AuditEntry, fields: dict[str, object], previous: str) -> tuple[str, str]:
    """The (leaf, entry) hashes ``entry`` would have with these contents and link,
    in its format (audit.chain)."""
    if not entry.leaf_hash:
        return "", chain.entry_hash({**fields, "previous_hash": previous})
    leaf = chain.leaf_hash(fields)
    return leaf, chain.linked_hash(leaf, entry.sequence, entry.stream, entry.position, previous)


def rewrite_and_rehash(from_sequence: int) -> None:
    """Alter an entry and rehash everything after it in its stream, the heads
    included: the chain then verifies on its own (once the checkpoints are gone too),
    as it would after a careful attacker."""
    altered = AuditEntry.objects.get(sequence=from_sequence)
    stream = altered.stream
    previous = AuditEntry.objects.get(stream=stream, position=altered.position - 1).entry_hash
    with trigger_disabled():
        later = AuditEntry.objects.filter(stream=stream, position__gte=altered.position)
        for entry in later.order_by("position"):
            names = {*chain.HASHED_FIELDS, *chain.LEAF_FIELDS} - {"previous_hash"}
            fields = {name: getattr(entry, name) for name in names}
            if entry.sequence == from_sequence:
                fields["data"] = {"amount": 1}
            leaf, entry_hash = rehashed(entry, fields, previous)
            AuditEntry.objects.filter(pk=entry.pk).update(
                data=fields["data"], previous_hash=previous, leaf_hash=leaf, entry_hash=entry_hash
            )
            previous = entry_hash
    AuditStreamHead.objects.filter(stream=stream).update(entry_hash=previous)
    last = AuditEntry.objects.filter(sequence__isnull=False).order_by("-sequence").first()
    AuditChainHead.objects.filter(pk=1).update(entry_hash=last.entry_hash)
