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
            fields = {name: getattr(entry, name) for name in chain.HASHED_FIELDS}
            if entry.sequence == from_sequence:
                fields["data"] = {"amount": 1}
            fields["previous_hash"] = previous
            previous = chain.entry_hash(fields)
            AuditEntry.objects.filter(pk=entry.pk).update(
                data=fields["data"], previous_hash=fields["previous_hash"], entry_hash=previous
            )
    AuditStreamHead.objects.filter(stream=stream).update(entry_hash=previous)
    last = AuditEntry.objects.order_by("-sequence").first()
    AuditChainHead.objects.filter(pk=1).update(entry_hash=last.entry_hash)
