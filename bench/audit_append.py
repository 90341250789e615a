"""How fast does the audit log take appends, alone and with eight writers, how long do
entries wait to be integrated, and how fast does it verify? Prints figures next to
their targets (issue 14), never fails on them.

    .venv/bin/python bench/audit_append.py [--entries 2000] [--writers 8]

On a fresh PostgreSQL database (``--database-url``, default ``slotpay_bench_audit``,
dropped and recreated): one writer appends ``--entries`` entries, then ``--writers``
writers (separate processes, as web and worker processes are) append as many each at
once (the test suite runs the same race with threads at a smaller size:
tests/audit/test_concurrency.py). Every append is its own transaction: a queued
insert, then the writer's try to integrate (audit/sequencer.py). The integration
delay of each entry of the many-writer run is its ``integrated_at`` minus its
``created_at``. Then a full verification walks every entry. Each run checks that
nothing was lost, nothing is left queued and the chain verifies.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import stack  # noqa: E402 (after the path fix above)

TARGET_APPENDS_MANY = 5000  # appends/s with 8 writers on PostgreSQL
TARGET_VERIFY = 100_000  # entries/s


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _writer(writer: int, start: multiprocessing.synchronize.Barrier, count: int) -> None:
    from django.db import connections

    from tests.audit.test_concurrency import append_entries

    connections.close_all()  # never share the parent's socket
    append_entries(writer, start, count)


def _run(writers: int, entries: int) -> tuple[float, int]:
    """Appends/s of ``writers`` processes appending ``entries`` each; the first id of
    the run, to find its entries afterwards."""
    from django.db import connections

    from audit.models import AuditEntry

    first_id = (AuditEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1
    before = AuditEntry.objects.count()
    connections.close_all()
    context = multiprocessing.get_context("fork")
    start = context.Barrier(writers + 1)
    processes = [
        context.Process(target=_writer, args=(number, start, entries)) for number in range(writers)
    ]
    for process in processes:
        process.start()
    start.wait()
    began = time.perf_counter()
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - began
    if any(process.exitcode for process in processes):
        raise SystemExit("a writer failed")
    added = AuditEntry.objects.count() - before
    if added != writers * entries:
        raise SystemExit(f"appends were lost: {added} of {writers * entries}")
    return added / elapsed, first_id


def _delays(first_id: int) -> list[float]:
    """Each entry's wait between being written and being integrated, in seconds."""
    from audit.models import AuditEntry

    rows = AuditEntry.objects.filter(id__gte=first_id).values_list("created_at", "integrated_at")
    return [(integrated - created).total_seconds() for created, integrated in rows if integrated]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--entries", type=int, default=2000, help="appends per writer")
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/slotpay_bench_audit"
    )
    options = parser.parse_args()
    stack.recreate_database(options.database_url)
    os.environ["DATABASE_URL"] = options.database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django

    django.setup()
    from django.core.management import call_command

    from audit.sequencer import integration_delay
    from audit.services import verify_chain

    call_command("migrate", verbosity=0)

    one, _ = _run(1, options.entries)
    many, first_id = _run(options.writers, options.entries)
    queued = integration_delay().queued
    delays = _delays(first_id)
    began, cpu = time.perf_counter(), time.process_time()
    report = verify_chain(full=True)
    verify_rate = report.entries / (time.perf_counter() - began)
    # The verifier's own CPU time: what the rate would be with a core to itself (this
    # machine's other load shows in the gap between the two).
    verify_cpu_rate = report.entries / max(time.process_time() - cpu, 1e-9)

    writers = options.writers
    say(f"{'':34}{'measured':>12}  target")
    say(f"{'appends/s, 1 writer':34}{one:12.0f}  -")
    say(f"{f'appends/s, {writers} writers':34}{many:12.0f}  {TARGET_APPENDS_MANY}")
    say(f"{f'ratio {writers} writers / 1 writer':34}{many / one:12.2f}  -")
    for label, share in (("p50", 0.50), ("p95", 0.95)):
        say(f"{f'integration delay {label}, ms':34}{_percentile(delays, share) * 1000:12.1f}  -")
    say(f"{'integration delay max, ms':34}{max(delays) * 1000:12.1f}  bounded, small")
    say(f"{'integration delay mean, ms':34}{statistics.fmean(delays) * 1000:12.1f}  -")
    say(f"{'left queued after the writers':34}{queued:12d}  0")
    say(f"{'verification, entries/s':34}{verify_rate:12.0f}  {TARGET_VERIFY}")
    say(f"{'  per second of verifier CPU':34}{verify_cpu_rate:12.0f}  -")
    say(f"{'entries verified':34}{report.entries:12d}")
    say(f"chain verifies: {report.ok}  {report.reason}")
    say(f"load average (1, 5, 15 min) at the end: {os.getloadavg()}, on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
