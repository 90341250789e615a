"""From Stripe's ``checkout.session.completed`` to the booking confirmed, through the
whole stack. Prints figures, never fails on timing.

    .venv/bin/python bench/booking_e2e.py [--rate 100] [--seconds 15] [--backlog 600]

It starts what production runs (bench/traffic.py, bench/stack.py): a fresh PostgreSQL
database (``--database-url``, default ``slotpay_chaos_e2e`` on the local server,
dropped at the end; or ``--private-postgres``), a private redis-server, gunicorn
serving the site and the Stripe sandbox, ``--workers`` Celery workers (concurrency
``--concurrency`` each) and beat, with the domain's own handlers (``tests.settings``).

Then:

1. prepares bookings awaiting payment, each with its Checkout Session opened by the
   application (over HTTP, in the sandbox), and pays every session on the sandbox's
   hosted page, so that "Stripe" says each is complete and paid (the handler re-reads
   the session, its PaymentIntent and Charge from the sandbox before confirming);
2. fixed rate: posts the sandbox's signed ``checkout.session.completed`` deliveries at
   ``--rate`` per second for ``--seconds``; for each, the time from its POST to the
   booking confirmed in the database (``status_changed_at``, written by the confirming
   transition), p50/p95/p99, and the acknowledgement times;
3. backlog: with the workers stopped, ``--backlog`` more deliveries are acknowledged
   and queued; the workers start again and drain it: confirmations per second from the
   first to the last, divided by the workers, is the sustainable rate per worker.

Target (issue 14): p95 < 2 s at 100 events/s with 2 workers, on this 2-core machine
that the load generator, gunicorn, the sandbox, PostgreSQL and Redis share.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: bench/ is sys.path[0], not the repository
    sys.path.insert(0, str(REPO))

from bench import traffic  # noqa: E402 (after the path fix above)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/slotpay_chaos_e2e"
COMPLETED = "checkout.session.completed"
TARGET_P95 = 2.0  # seconds
TARGET_RATE = 100.0  # deliveries per second
TARGET_WORKERS = 2
WARM_UP = 20

Batch = list[tuple[int, "traffic.Delivery"]]  # (booking id, its delivery)
# Production's recovery timings (config/settings.py), not the chaos test's quick ones
# (bench/traffic.FAST_RECOVERY): with a 20 s processing timeout the sweeper queues
# every event that has waited longer in a backlog a second time, and the copies make
# the backlog longer still.
PRODUCTION_RECOVERY = {
    "WEBHOOK_PROCESSING_TIMEOUT_SECONDS": 360,
    "WEBHOOK_REQUEUE_AFTER_SECONDS": 60,
    "WEBHOOK_SWEEP_INTERVAL_SECONDS": 60,
    "WEBHOOK_RETRY_BASE_SECONDS": 30,
    "WEBHOOK_RETRY_CAP_SECONDS": 3600,
}


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="per s (default 100)")
    parser.add_argument("--seconds", type=float, default=15, help="fixed-rate run (default 15)")
    parser.add_argument("--backlog", type=int, default=600, help="drained at the end (600)")
    parser.add_argument("--workers", type=int, default=TARGET_WORKERS, help="Celery (default 2)")
    parser.add_argument("--concurrency", type=int, default=1, help="per worker (default 1)")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn (default 2)")
    parser.add_argument("--web-threads", type=int, default=4, help="each (default 4)")
    parser.add_argument("--sender-threads", type=int, default=16, help="(default 16)")
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help=f"recreated at the start, dropped at the end (default {DEFAULT_DATABASE_URL})",
    )
    parser.add_argument(
        "--private-postgres", action="store_true", help="a cluster of its own instead"
    )
    parser.add_argument("--keep-database", action="store_true", help="leave it at the end")
    return parser.parse_args(argv)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.0f} ms"


def _deliveries(
    run: traffic.BookingStack, prepared: list[traffic.Prepared]
) -> dict[int, traffic.Delivery]:
    """Pay every session on the hosted page; the sandbox's completed events, by booking."""
    sandbox = run.sandbox()
    traffic.each(lambda row: sandbox.pay(row.url), prepared)
    events = [event for event in sandbox.events() if event["type"] == COMPLETED]
    by_reference = {row.reference: row.booking for row in prepared}
    references = traffic.bookings_of(events)
    return {
        by_reference[references[event["id"]]]: traffic.Delivery.of(event, references[event["id"]])
        for event in events
        if references.get(event["id"]) in by_reference
    }


def _queue_quiet(run: traffic.BookingStack, timeout: float = 300) -> None:
    """Wait until the broker's queue is empty (the preparation's e-mails are sent)."""
    import redis

    client = redis.Redis(port=run.redis.port)
    deadline = time.monotonic() + timeout
    while client.llen("slotpay") and time.monotonic() < deadline:
        time.sleep(0.5)
    client.close()


@dataclass
class Phase:
    """What one phase sent and what became of it."""

    sent: list[traffic.Sent]
    confirmed: dict[int, float]  # booking -> when confirmed (unix time)
    latencies: list[float] = field(default_factory=list)  # POST -> confirmed, seconds
    cpu: Counter[str] = field(default_factory=Counter)  # CPU seconds by process kind
    wall: float = 0.0  # seconds the CPU was counted over

    @property
    def acknowledged(self) -> int:
        return sum(item.ok for item in self.sent)

    @property
    def acks(self) -> list[float]:
        return [item.acknowledged - item.first_post for item in self.sent if item.acknowledged]

    @property
    def achieved_rate(self) -> float:
        starts = sorted(item.first_post for item in self.sent)
        span = starts[-1] - starts[0] if len(starts) > 1 else 0.0
        return (len(starts) - 1) / span if span else 0.0

    @property
    def drain_rate(self) -> float:
        times = sorted(self.confirmed.values())
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        return (len(times) - 1) / span if span else 0.0

    @property
    def statuses(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for item in self.sent:
            for _, status in item.answers:
                counts[str(status) if status else "no connection"] += 1
        return dict(counts)

    @property
    def errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != "200")


def _send(
    run: traffic.BookingStack, batch: Batch, *, rate: float, threads: int
) -> list[traffic.Sent]:
    return traffic.send_paced(
        run.endpoints(), [delivery for _, delivery in batch], rate=rate, threads=threads
    )


def fixed_rate(run: traffic.BookingStack, batch: Batch, *, rate: float, threads: int) -> Phase:
    sent = _send(run, batch, rate=rate, threads=threads)
    with run.connect() as conn:
        confirmed = traffic.wait_confirmed(
            conn, [pk for pk, _ in batch], timeout=180 + len(batch) / 20
        )
    latencies = [
        confirmed[pk] - item.first_post
        for (pk, _), item in zip(batch, sent, strict=True)
        if pk in confirmed
    ]
    return Phase(sent, confirmed, latencies)


TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(run: traffic.BookingStack) -> Counter[str]:
    """CPU time (user + system) used so far by each kind of process: the services'
    process groups, and the PostgreSQL backends serving the run's database (the
    server's own, found by the database name in their title). Linux /proc only."""
    groups = {run.web.pid: "gunicorn (site + sandbox)", run.beat.pid: "beat"}
    groups.update({worker.pid: "celery workers" for worker in run.workers})
    groups[run.redis.pid] = "redis"
    database = f" {run.database_url.rsplit('/', 1)[-1]} "
    used: Counter[str] = Counter()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        group, ticks = int(fields[2]), int(fields[11]) + int(fields[12])
        if group in groups:
            used[groups[group]] += ticks / TICKS
        elif title.startswith("postgres:") and database in title:
            used["postgresql backends"] += ticks / TICKS
    return used


def backlog(run: traffic.BookingStack, batch: Batch) -> Phase:
    """Queue ``batch`` with the workers stopped, then let them drain it."""
    for worker in run.workers:
        worker.stop()
    sent = _send(run, batch, rate=0, threads=8)
    for worker in run.workers:
        worker.start()
    for worker in run.workers:
        worker.wait_ready()
    before, started = cpu_seconds(run), time.monotonic()
    with run.connect() as conn:
        confirmed = traffic.wait_confirmed(
            conn, [pk for pk, _ in batch], timeout=120 + len(batch) / 5
        )
    phase = Phase(sent, confirmed)
    phase.cpu = cpu_seconds(run)
    phase.cpu.subtract(before)
    phase.wall = time.monotonic() - started
    return phase


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    fixed_count = round(args.rate * args.seconds)
    total = WARM_UP + fixed_count + args.backlog
    say("Booking end-to-end benchmark: checkout.session.completed -> booking confirmed")
    say(
        f"  machine: {os.cpu_count()} CPUs, shared by the load generator and every service; "
        f"gunicorn {args.web_workers} x {args.web_threads} threads; Celery workers "
        f"{args.workers} x concurrency {args.concurrency}; beat"
    )
    database = "a private cluster" if args.private_postgres else args.database_url
    say(f"  database: {database}; bookings: {total} ({WARM_UP} warm-up)")
    with (
        tempfile.TemporaryDirectory(prefix="slotpay-e2e-") as tmp,
        traffic.booking_stack(
            Path(tmp),
            database_url=None if args.private_postgres else args.database_url,
            private_postgres=args.private_postgres,
            workers=args.workers,
            concurrency=args.concurrency,
            web_workers=args.web_workers,
            web_threads=args.web_threads,
            keep_database=args.keep_database,
            **PRODUCTION_RECOVERY,
        ) as run,
    ):
        started = time.monotonic()
        prepared = run.prepare(total)
        deliveries = _deliveries(run, prepared)
        _queue_quiet(run)
        say(
            f"  prepared and paid {len(prepared)} sessions in the sandbox in "
            f"{time.monotonic() - started:.0f} s; {len(deliveries)} completed events to send"
        )
        ordered = [(row.booking, deliveries[row.booking]) for row in prepared]
        warm, fixed, rest = (
            ordered[:WARM_UP],
            ordered[WARM_UP : WARM_UP + fixed_count],
            ordered[WARM_UP + fixed_count :],
        )
        fixed_rate(run, warm, rate=10, threads=4)
        say()

        one = fixed_rate(run, fixed, rate=args.rate, threads=args.sender_threads)
        say(f"1. Fixed rate: {args.rate:.0f} deliveries/s for {args.seconds:.0f} s")
        say(
            f"  sent {len(one.sent)}, acknowledged {one.acknowledged}, bookings confirmed "
            f"{len(one.confirmed)}; achieved {one.achieved_rate:.1f}/s; answers {one.statuses}"
        )
        say(f"  {'':<30}{'measured':>12}{'target':>12}")
        for p in (50, 95, 99):
            target = f"< {TARGET_P95:.0f} s" if p == 95 else ""
            measured = _ms(traffic.percentile(one.latencies, p))
            say(f"  {f'POST -> confirmed p{p}':<30}{measured:>12}{target:>12}")
        say(f"  {'POST -> confirmed max':<30}{_ms(max(one.latencies, default=float('nan'))):>12}")
        for p in (50, 99):
            say(f"  {f'acknowledgement p{p}':<30}{_ms(traffic.percentile(one.acks, p)):>12}")
        say()

        two = backlog(run, rest)
        per_worker = two.drain_rate / max(1, args.workers)
        say(f"2. Backlog: {len(rest)} deliveries queued with the workers stopped, then drained")
        say(
            f"  acknowledged {two.acknowledged}/{len(two.sent)}, confirmed "
            f"{len(two.confirmed)}; answers {two.statuses}"
        )
        say(
            f"  drain rate {two.drain_rate:.1f} confirmations/s with {args.workers} workers: "
            f"{per_worker:.1f}/s per worker (the target needs "
            f"{TARGET_RATE / TARGET_WORKERS:.0f}/s per worker)"
        )
        count = max(1, len(two.confirmed))
        say(
            f"  where the time goes while draining: CPU per confirmed booking, by process "
            f"({os.cpu_count()} CPUs, {two.wall:.1f} s wall)"
        )
        for kind, seconds in two.cpu.most_common():
            say(f"    {kind:<28}{seconds / count * 1000:8.1f} ms{seconds / two.wall:8.0%} of a CPU")
        say()

        p95 = traffic.percentile(one.latencies, 95)
        unconfirmed = len(fixed) - len(one.confirmed) + len(rest) - len(two.confirmed)
        say("Against the targets (figures, never a verdict: the machine is shared)")
        say(
            f"  p95 POST -> confirmed at {args.rate:.0f}/s with {args.workers} workers: "
            f"{p95:.2f} s; target < {TARGET_P95:.0f} s at {TARGET_RATE:.0f}/s with "
            f"{TARGET_WORKERS}: {'met' if p95 < TARGET_P95 else 'missed'}"
        )
        say(
            f"  sustainable rate: {two.drain_rate:.1f}/s ({per_worker:.1f}/s per worker); "
            f"target {TARGET_RATE:.0f}/s with {TARGET_WORKERS} workers: "
            f"{'met' if two.drain_rate >= TARGET_RATE else 'missed'}"
        )
        say(f"  non-200 answers: {one.errors + two.errors}; unconfirmed bookings: {unconfirmed}")


if __name__ == "__main__":
    main()
