"""How fast does the audit chain take appends, alone and with eight writers? Prints
figures, never fails.

    .venv/bin/python bench/audit_appends.py [--entries 1000] [--writers 8]

On a fresh PostgreSQL database (``--database-url``, default ``slotpay_bench_audit``,
dropped and recreated): one writer appends ``--entries`` entries, then ``--writers``
writers append as many each at once (the test suite runs the same race at a tenth of
the size: tests/audit/test_concurrency.py); each run checks that the chain is gapless
and verifies. Every append is its own transaction and takes the chain head's lock, so
the eight writers' rate next to the one writer's shows what that lock costs.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _fresh_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/slotpay_bench_audit"
    )
    options = parser.parse_args()
    _fresh_database(options.database_url)
    os.environ["DATABASE_URL"] = options.database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django

    django.setup()
    from django.core.management import call_command

    from audit.models import AuditEntry
    from audit.services import verify_chain
    from tests.audit.test_concurrency import append_entries

    call_command("migrate", verbosity=0)

    def run(writers: int) -> float:
        before = AuditEntry.objects.count()
        start = threading.Barrier(writers)
        threads = [
            threading.Thread(target=append_entries, args=(w, start, options.entries))
            for w in range(writers)
        ]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
        added = AuditEntry.objects.count() - before
        if added != writers * options.entries:
            raise SystemExit(f"appends were lost: {added} of {writers * options.entries}")
        return added / elapsed

    one = run(1)
    many = run(options.writers)
    began = time.perf_counter()
    report = verify_chain()
    verify_rate = report.entries / (time.perf_counter() - began)
    say(f"appends/s, 1 writer:            {one:10.0f}")
    say(f"appends/s, {options.writers} writers:           {many:10.0f}")
    say(f"ratio {options.writers} writers / 1 writer:    {many / one:10.2f}")
    say(f"verification, entries/s:        {verify_rate:10.0f}  ({report.entries} entries)")
    say(f"chain verifies:                 {report.ok}  {report.reason}")


if __name__ == "__main__":
    main()
