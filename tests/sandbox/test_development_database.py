"""``make run`` on PostgreSQL: the sandbox shares the default database.

A second alias onto the same PostgreSQL database shared one migration history: the
default alias recorded the sandbox's migrations without creating their tables, the
sandbox alias then found them recorded, and ``seed_demo`` failed on a missing table.
"""

from __future__ import annotations

import io
from pathlib import Path

from django.core.management import call_command

from config.env import sandbox_database


def test_on_postgresql_the_sandbox_shares_the_default_database():
    default = {"ENGINE": "django.db.backends.postgresql", "NAME": "slotpay"}

    assert sandbox_database(default, Path("/srv/slotpay")) is None


def test_on_sqlite_it_keeps_a_file_of_its_own():
    default = {"ENGINE": "django.db.backends.sqlite3", "NAME": "/srv/slotpay/db.sqlite3"}

    own = sandbox_database(default, Path("/srv/slotpay"))

    assert own == {**default, "NAME": "/srv/slotpay/db-sandbox.sqlite3"}


def test_sandbox_migrate_has_nothing_to_do_on_a_shared_database():
    out = io.StringIO()

    call_command("sandbox_migrate", stdout=out)

    assert "shares the default database" in out.getvalue()
