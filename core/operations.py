"""Migration operations of our own.

``AddIndexConcurrently`` builds an index without blocking writes to the table while it
builds: on PostgreSQL, ``CREATE INDEX CONCURRENTLY`` (the webhook endpoint, the booking
flow and the payments keep writing during a deploy); elsewhere (SQLite, the embedded
default, which has no such thing and no concurrent writers to speak of) a plain index.
A migration that uses it must say ``atomic = False``: PostgreSQL refuses a concurrent
build inside a transaction. A build that fails leaves an invalid index behind, which
``DROP INDEX`` removes before the migration is run again.
"""

from __future__ import annotations

from typing import Any

from django.contrib.postgres.operations import AddIndexConcurrently as PostgresAddIndexConcurrently
from django.db import migrations


class AddIndexConcurrently(PostgresAddIndexConcurrently):
    def describe(self) -> str:
        return f"{super().describe()} (concurrently on PostgreSQL)"

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_forwards(
                self, app_label, schema_editor, from_state, to_state
            )

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_backwards(
                self, app_label, schema_editor, from_state, to_state
            )
