"""How fast does the retention purge delete, and what does it cost webhook ingest while it
runs? Prints figures, never fails.

    .venv/bin/python bench/retention_purge.py [--rows 1000000] [--rate 20]

It starts the stack as bench/webhook_ingest.py does (a fresh PostgreSQL database,
``--database-url``, default ``slotpay_bench_retention``, dropped at the end unless
``--keep-database``; a private redis-server; gunicorn and a Celery worker, through
:mod:`bench.stack`), then:

1. inserts ``--rows`` webhook events already past their dedup retention (processed,
   received 8 days ago, payload already purged): the rows of the ``webhooks.dedup_keys``
   rule, copied from one template row by one ``INSERT ... SELECT generate_series``;
2. baseline: signed Stripe deliveries to the webhook endpoint at ``--rate`` per second
   for ``--baseline-seconds``, nothing else running: latency p50/p99;
3. the purge: ``audit.purges.run(rules=["webhooks.dedup_keys"])`` in its own process
   (batches of RETENTION_BATCH_SIZE rows, each its own transaction, as beat runs it),
   with the same delivery rate going on until it ends: rows/s (Django's start-up not
   counted), and the ingest latency during the purge next to the baseline's.

Both loads are open loop (latency counted from each delivery's scheduled time), in the
same run, against the same servers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: bench/ is sys.path[0], not the repository
    sys.path.insert(0, str(REPO))

from bench.webhook_ingest import (  # noqa: E402 (after the path set-up above)
    Deliveries,
    Result,
    _record,
    _send,
    bench_services,
    say,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/slotpay_bench_retention"
RULE = "webhooks.dedup_keys"


def insert_expired_events(database_url: str, rows: int) -> float:
    """``rows`` processed events received 8 days ago, without payload; returns seconds.

    One template row is written by hand, then copied ``rows`` times by the database
    itself, with every column the model has now (whatever migrations added)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(database_url, autocommit=True) as conn:
        columns = [
            name
            for (name,) in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'webhooks_webhookevent' AND column_name <> 'id' "
                "ORDER BY ordinal_position"
            ).fetchall()
        ]
        started = time.perf_counter()
        eight_days_ago = conn.execute("SELECT now() - interval '8 days'").fetchone()[0]
        template_values: dict[str, Any] = {
            "provider": "stripe",
            "event_id": "evt_template",
            "event_type": "checkout.session.completed",
            "status": "processed",
            "attempts": 1,
            "received_at": eight_days_ago,
            "next_attempt_at": eight_days_ago,
            "processed_at": eight_days_ago,
            "last_error": "",
            "headers": "{}",
            "request_id": "",
            "source": "delivery",  # added by a later migration: only if the column exists
        }
        template_values = {name: v for name, v in template_values.items() if name in columns}
        template = conn.execute(
            sql.SQL("INSERT INTO webhooks_webhookevent ({}) VALUES ({}) RETURNING id").format(
                sql.SQL(", ").join(map(sql.Identifier, template_values)),
                sql.SQL(", ").join(sql.Placeholder() * len(template_values)),
            ),
            list(template_values.values()),
        ).fetchone()[0]
        copied = [
            sql.SQL("'evt_expired_' || g") if name == "event_id" else sql.Identifier(name)
            for name in columns
        ]
        conn.execute(
            sql.SQL(
                "INSERT INTO webhooks_webhookevent ({columns}) SELECT {values} "
                "FROM webhooks_webhookevent, generate_series(1, {rows}) AS g WHERE id = {id}"
            ).format(
                columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
                values=sql.SQL(", ").join(copied),
                rows=sql.Literal(rows - 1),
                id=sql.Literal(template),
            )
        )
        conn.execute("ANALYZE webhooks_webhookevent")
    return time.perf_counter() - started


class SteadyLoad:
    """Signed deliveries at a fixed rate, in threads, from ``start()`` until ``stop()``.

    Open loop: ``result`` counts each delivery's latency from its scheduled time (a late
    start counts, so it grows without bound when the rate is above what the servers
    answer); ``answers`` from when it was sent (the answer's own time)."""

    def __init__(self, port: int, path: str, deliveries: Deliveries, *, rate: float) -> None:
        self.port, self.path, self.deliveries, self.rate = port, path, deliveries, rate
        self.result = Result("from schedule")
        self.answers = Result("from sending")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._tickets = iter(range(10**9))
        self._threads = [
            threading.Thread(target=self._run, daemon=True)
            for _ in range(max(8, min(64, round(rate * 0.1))))
        ]
        self._begin = 0.0

    def _run(self) -> None:
        from bench.webhook_ingest import Client

        client = Client(self.port)
        try:
            while not self._stop.is_set():
                with self._lock:
                    number = next(self._tickets)
                scheduled = self._begin + number / self.rate
                pause = scheduled - time.perf_counter()
                if pause > 0 and self._stop.wait(pause):
                    return
                sent = time.perf_counter()
                outcome = _send(client, self.path, self.deliveries)
                _record(self.result, self._lock, scheduled, outcome)
                _record(self.answers, self._lock, sent, outcome)
        finally:
            client.close()

    def start(self) -> SteadyLoad:
        self._begin = time.perf_counter() + 0.2
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> SteadyLoad:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self.result.elapsed = self.answers.elapsed = time.perf_counter() - self._begin
        return self


PURGE_SCRIPT = """
import sys, time, django
django.setup()
from audit import purges
purges.rules()  # imports every app's rules before the clock starts
print("ready", flush=True)
sys.stdin.readline()
started = time.perf_counter()
done = purges.run(rules=[{rule!r}])
print(done[{rule!r}], time.perf_counter() - started, flush=True)
"""


def purge_during(env: dict[str, str], load: SteadyLoad) -> tuple[int, float, SteadyLoad]:
    """The rule's purge as beat runs it (``audit.purges.run``), in its own process, with
    ``load`` running from the purge's first batch to its last: the rows purged, the
    seconds the purge took, and the load's result."""
    process = subprocess.Popen(  # noqa: S603 (our own fixed command)
        [sys.executable, "-c", PURGE_SCRIPT.format(rule=RULE)],
        cwd=REPO,
        env={**env, "LOG_LEVEL": "WARNING"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None  # noqa: S101 (piped above)
    assert process.stdout is not None  # noqa: S101 (piped above)
    if process.stdout.readline().strip() != "ready":
        process.kill()
        raise RuntimeError("the purge process did not start")
    load.start()
    process.stdin.write("go\n")
    process.stdin.flush()
    answer = process.stdout.readline().split()
    result = load.stop()
    if process.wait(timeout=60) or len(answer) != 2:
        raise RuntimeError(f"the purge failed (exit {process.returncode})")
    return int(answer[0]), float(answer[1]), result


def remaining(database_url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        return dict(
            conn.execute(
                "SELECT CASE WHEN event_id LIKE 'evt_expired_%%' OR event_id = 'evt_template' "
                "THEN 'expired' ELSE 'delivered' END, count(*) "
                "FROM webhooks_webhookevent GROUP BY 1"
            ).fetchall()
        )


def _row(label: str, *values: str) -> str:
    return f"  {label:<26}" + "".join(f"{value:>20}" for value in values)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="(default 1,000,000)")
    parser.add_argument("--rate", type=float, default=20, help="deliveries/s (default 20)")
    parser.add_argument("--baseline-seconds", type=float, default=20, help="(default 20)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--keep-database", action="store_true", help="leave it at the end")
    parser.add_argument("--redis-url", default=None, help="default: a private redis-server")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="threads each (default 2)")
    args = parser.parse_args(argv)
    # What bench_services (bench/webhook_ingest.py) reads besides these.
    args.worker_class, args.celery_concurrency = "gthread", 1
    args.log_level, args.defer_worker = "WARNING", False
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    say("Retention purge benchmark")
    say(
        f"  machine: {os.cpu_count()} CPUs; gunicorn {args.workers} x gthread "
        f"({args.threads} threads), Celery worker concurrency 1"
    )
    say(f"  rule {RULE}; ingest load {args.rate:.0f} deliveries/s (open loop)")
    say(
        "  load average (1, 5, 15 min) at the start: "
        + ", ".join(f"{load:.1f}" for load in os.getloadavg())
    )
    say(f"  database: {args.database_url} ({'kept' if args.keep_database else 'dropped'} at end)")
    with (
        tempfile.TemporaryDirectory(prefix="slotpay-bench-") as tmp,
        bench_services(args, Path(tmp)) as services,
    ):
        env: dict[str, Any] = services["env"]
        secrets, port = services["secrets"], services["web"].port
        path = f"/webhooks/stripe/{secrets.stripe_path_token}/"
        secret = secrets.stripe_webhook_secret

        took = insert_expired_events(args.database_url, args.rows)
        say(f"1. {args.rows:,} expired webhook events inserted in {took:.1f} s")
        say()

        warm = SteadyLoad(port, path, Deliveries(secret, duplicates=0.0, label="w"), rate=args.rate)
        warm.start()
        time.sleep(3)
        warm.stop()

        load = SteadyLoad(port, path, Deliveries(secret, duplicates=0.1, label="b"), rate=args.rate)
        load.start()
        time.sleep(args.baseline_seconds)
        baseline = load.stop()

        load = SteadyLoad(port, path, Deliveries(secret, duplicates=0.1, label="p"), rate=args.rate)
        rows, purge_seconds, during = purge_during(env, load)
        left = remaining(args.database_url)

        say(f"2. Purge of {RULE}: {rows:,} rows in {purge_seconds:.1f} s")
        say(
            f"  {rows / purge_seconds:,.0f} rows/s (batches of RETENTION_BATCH_SIZE, each its "
            f"own transaction); rows left: {left}"
        )
        say()
        say(f"3. Webhook ingest at {args.rate:.0f}/s: without the purge vs during it")
        say(_row("", "without purge", "during purge"))
        shown = (
            ("deliveries answered", lambda r: f"{r.done}"),
            ("achieved rate (/s)", lambda r: f"{r.throughput:.1f}"),
            ("errors", lambda r: f"{r.error_count}"),
            ("latency p50 (ms)", lambda r: f"{r.percentile(50):.1f}"),
            ("latency p95 (ms)", lambda r: f"{r.percentile(95):.1f}"),
            ("latency p99 (ms)", lambda r: f"{r.percentile(99):.1f}"),
            ("latency max (ms)", lambda r: f"{r.percentile(100):.1f}"),
        )
        for label, value in shown[:3]:
            say(_row(label, value(baseline.result), value(during.result)))
        for of in ("result", "answers"):
            say(f"  {getattr(baseline, of).name}:")
            for label, value in shown[3:]:
                say(_row(label, value(getattr(baseline, of)), value(getattr(during, of))))
            before, under = getattr(baseline, of), getattr(during, of)
            ratio = under.percentile(99) / before.percentile(99) if before.done else 0.0
            say(f"  p99 during / without ({before.name}): {ratio:.2f}")


if __name__ == "__main__":
    main()
