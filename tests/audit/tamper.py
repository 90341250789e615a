"""What someone with the database owner's rights can do: switch the append-only
triggers off and write to the tables directly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

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
