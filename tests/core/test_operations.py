"""Indexes on the busy tables are built without blocking their writes (core.operations)."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from core.operations import AddIndexConcurrently

pytestmark = pytest.mark.django_db

# The tables the webhook endpoint, the booking flow and payments write all the time.
BUSY = {"bookings_booking", "payments_payment", "payments_refund", "webhooks_webhookevent"}


def _index_migrations() -> list[tuple[str, str, object]]:
    """(app, migration, operation) for each index added after the table was created."""
    loader = MigrationLoader(connection)
    found = []
    for (app, name), migration in loader.disk_migrations.items():
        if name.startswith("0001"):
            continue  # the table is new: nothing writes to it yet
        for operation in migration.operations:
            if type(operation).__name__.startswith("AddIndex"):
                found.append((app, name, operation))
    return found


def test_indexes_added_to_busy_tables_are_built_concurrently():
    late = [
        (app, name, operation)
        for app, name, operation in _index_migrations()
        if f"{app}_{operation.model_name}" in BUSY
    ]
    assert late, "no index migration found on the busy tables"
    plain = [f"{app}.{name}" for app, name, op in late if not isinstance(op, AddIndexConcurrently)]
    assert plain == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # no transaction around sqlmigrate: see the assert
@pytest.mark.parametrize(
    ("app", "migration"),
    [("bookings", "0009"), ("payments", "0007"), ("webhooks", "0004")],
)
def test_on_postgresql_the_index_is_created_concurrently(app, migration):
    out = StringIO()
    call_command("sqlmigrate", app, migration, stdout=out)
    sql = out.getvalue()
    assert "CREATE INDEX CONCURRENTLY" in sql
    assert "BEGIN;" not in sql  # PostgreSQL refuses a concurrent build in a transaction
