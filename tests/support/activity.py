"""What the test database's other connections are doing (PostgreSQL's pg_stat_activity)."""

from __future__ import annotations

from django.db import connection


def idle_in_transaction(longer_than: float) -> list[str]:
    """The start of the last statement of each other connection to the test database
    that has held a transaction open while doing nothing for over ``longer_than``
    seconds. A moment between two statements of one transaction is normal; waiting on a
    provider there is not."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT left(query, 80) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state LIKE 'idle in transaction%%' AND pid <> pg_backend_pid()"
            " AND now() - state_change > make_interval(secs => %s)",
            [longer_than],
        )
        return [row[0] for row in cursor.fetchall()]
