"""How fast does the webhook endpoint acknowledge deliveries? Prints figures, never fails.

    .venv/bin/python bench/webhook_ingest.py [--connections 8] [--seconds 10] [--rate 200]

It creates a fresh PostgreSQL database (``--database-url``, default
``slotpay_bench``: dropped and recreated at the start, dropped at the end unless
``--keep-database``), migrates it, starts a private redis-server (or uses
``--redis-url``), gunicorn serving the application and a Celery worker (so the queue
drains, as in production), all through :mod:`bench.stack`. Then, in one run:

1. closed loop, ``--connections`` keep-alive connections for ``--seconds`` (or
   ``--count`` requests): (a) signed Stripe ``checkout.session.completed`` deliveries
   to the webhook endpoint, 10 % of them re-deliveries of an event already sent,
   (b) the same bodies to ``bench/insert/``, a view that writes the body as one row,
   committed (the durable-write limit), and (c) to ``bench/trivial/``, a view that only
   reads the body, all through the same gunicorn and middleware: throughput,
   p50/p95/p99 latency, errors, and the ratios ingest/trivial and ingest/insert;
2. open loop at ``--rate`` deliveries/second for ``--rate-seconds``: latency measured
   from each delivery's scheduled time (a late start counts), p99 and errors;
3. once the queue has drained: every stored event processed exactly once;
4. where the endpoint's time goes: PostgreSQL wait events sampled during (1a), and
   the endpoint's steps timed in-process, one delivery at a time.

Targets: ingest throughput >= half the trivial view's; p99 < 50 ms at 200/s; no errors.

The endpoint never publishes to the broker: the worker's relay does (webhooks/relay.py).
``--synchronous-commit off`` (or ``--commit-delay`` microseconds, PostgreSQL's group
commit) runs the servers' connections with that setting, to measure what the WAL
flush costs; neither is how the product runs: a delivery answered "stored" must
survive a crash.

The load generator shares the machine (2 cores here) with everything it measures, so
it is kept light: threads on ``http.client`` connections, bodies built by string
substitution, no third-party client.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import http.client
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: bench/ is sys.path[0], not the repository
    sys.path.insert(0, str(REPO))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/slotpay_bench"
EVENT_TYPE = "checkout.session.completed"
PLACEHOLDER = "evt_PLACEHOLDER"


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# --- Deliveries -----------------------------------------------------------------------


class Deliveries:
    """Signed Stripe deliveries: a fixed body whose event id is substituted, signed the
    way Stripe signs (``t=<unix>,v1=HMAC-SHA256(secret, "<t>.<body>")``).

    ``duplicates`` of the calls re-send an event already handed out (re-signed with a
    fresh timestamp, as Stripe's retries are), the rest are new events.
    """

    def __init__(self, secret: str, *, duplicates: float, label: str) -> None:
        session = json.loads((REPO / "tests/fixtures/stripe/checkout.session.json").read_text())
        envelope = {
            "id": PLACEHOLDER,
            "object": "event",
            "api_version": "2026-10-28.endive",
            "created": int(time.time()),
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": EVENT_TYPE,
            "data": {"object": session},
        }
        self.template = json.dumps(envelope)
        self.secret = secret.encode()
        self.duplicates = duplicates
        self.label = label
        self.sent: list[str] = []
        self.new = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._random = random.Random(label)  # noqa: S311 (load shape, not security)

    def next(self) -> tuple[bytes, str]:
        """(body, Stripe-Signature header) of the next delivery."""
        with self._lock:
            if self.sent and self._random.random() < self.duplicates:
                event_id = self._random.choice(self.sent)
            else:
                event_id = f"evt_bench_{self.label}_{next(self._ids):07d}"
                self.sent.append(event_id)
                self.new += 1
        body = self.template.replace(PLACEHOLDER, event_id, 1).encode()
        timestamp = str(int(time.time()))
        digest = hmac.new(self.secret, timestamp.encode() + b"." + body, hashlib.sha256)
        return body, f"t={timestamp},v1={digest.hexdigest()}"


# --- Load -----------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)  # seconds
    errors: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0
    late: int = 0  # open loop: deliveries that started > 5 ms after their schedule

    @property
    def done(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.done / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
        return ordered[index] * 1000

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


class Client:
    """One keep-alive connection (reconnects when the server closes it)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, path: str, body: bytes, signature: str) -> tuple[int, bytes]:
        headers = {
            "Content-Type": "application/json",
            "Stripe-Signature": signature,
            "Content-Length": str(len(body)),
        }
        try:
            self.connection.request("POST", path, body=body, headers=headers)
            response = self.connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            raise
        if response.will_close:
            self.connection.close()
        return response.status, payload

    def close(self) -> None:
        self.connection.close()


def _record(result: Result, lock: threading.Lock, started: float, outcome: Any) -> None:
    took = time.perf_counter() - started
    with lock:
        if isinstance(outcome, BaseException):
            result.errors[type(outcome).__name__] += 1
            return
        status, payload = outcome
        if status != 200:
            result.errors[f"HTTP {status}"] += 1
            return
        result.latencies.append(took)
        with contextlib.suppress(ValueError, AttributeError):
            result.outcomes[json.loads(payload).get("status", "?")] += 1


def closed_loop(
    name: str,
    port: int,
    path: str,
    deliveries: Deliveries,
    *,
    connections: int,
    seconds: float | None,
    count: int | None,
) -> Result:
    """``connections`` threads, each sending its next request as soon as the last one
    is answered, for ``seconds`` or until ``count`` requests are done."""
    result, lock = Result(name), threading.Lock()
    tickets = itertools.count()
    begin = time.perf_counter()
    deadline = begin + seconds if seconds else None

    def run() -> None:
        client = Client(port)
        try:
            while True:
                if deadline is not None and time.perf_counter() >= deadline:
                    return
                if count is not None and next(tickets) >= count:
                    return
                started = time.perf_counter()
                _record(result, lock, started, _send(client, path, deliveries))
        finally:
            client.close()

    _run_threads(run, connections)
    result.elapsed = time.perf_counter() - begin
    return result


def _send(client: Client, path: str, deliveries: Deliveries) -> Any:
    """Post the next delivery: the answer, or the connection error."""
    body, signature = deliveries.next()
    try:
        return client.post(path, body, signature)
    except (OSError, http.client.HTTPException) as exc:
        return exc


def _run_threads(target: Callable[[], None], count: int) -> None:
    threads = [threading.Thread(target=target, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def open_loop(
    name: str, port: int, path: str, deliveries: Deliveries, *, rate: float, seconds: float
) -> Result:
    """Deliveries at a fixed rate whatever the answers take (no coordinated omission):
    latency counts from each delivery's scheduled time."""
    total = round(rate * seconds)
    result, lock = Result(name), threading.Lock()
    tickets = itertools.count()
    begin = time.perf_counter() + 0.2
    # Enough threads that slow answers never hold back the schedule.
    pool = max(8, min(64, round(rate * 0.1)))

    def run() -> None:
        client = Client(port)
        try:
            while (number := next(tickets)) < total:
                scheduled = begin + number / rate
                pause = scheduled - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                outcome = _send(client, path, deliveries)
                with lock:
                    result.late += pause < -0.005
                _record(result, lock, scheduled, outcome)
        finally:
            client.close()

    _run_threads(run, pool)
    result.elapsed = time.perf_counter() - begin
    return result


# --- PostgreSQL wait sampling ---------------------------------------------------------


class WaitSampler:
    """Samples pg_stat_activity for the bench database every 20 ms: what the server's
    backends are doing (running, waiting on a lock, on WAL flush, idle in transaction),
    per client (``web``: gunicorn, ``worker``: Celery; their DATABASE_URLs set the
    application_name) while the endpoint is under load. Counts are backend-samples."""

    def __init__(self, database_url: str) -> None:
        import psycopg

        self.connection = psycopg.connect(database_url, autocommit=True)
        self.database = self.connection.info.dbname
        self.states: Counter[str] = Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        query = (
            "SELECT application_name, state, wait_event_type, wait_event FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        while not self._stop.wait(0.02):
            rows = self.connection.execute(query, (self.database,)).fetchall()
            self.samples += 1
            for application, state, wait_type, wait_event in rows:
                if state == "idle":
                    continue
                who = (application or "other").removeprefix("bench-")
                if state == "active" and not wait_type:
                    what = "active, running"
                elif state == "idle in transaction":
                    what = "idle in transaction (client working)"
                else:
                    what = f"{state}: {wait_type}/{wait_event}"
                self.states[f"{who:<7} {what}"] += 1

    def __enter__(self) -> WaitSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.connection.close()


# --- In-process profile ---------------------------------------------------------------


class Timers:
    """Wraps functions and adds up the time spent in them, per name."""

    def __init__(self) -> None:
        self.total: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.order: list[str] = []
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, attribute: str, name: str) -> None:
        original = getattr(owner, attribute)
        timers = self
        self.order.append(name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timers.total[name] += time.perf_counter() - started
                timers.calls[name] += 1

        # A module's function is replaced in place; an instance's method (a manager,
        # the connection) is shadowed by an instance attribute, removed afterwards.
        own = attribute in getattr(owner, "__dict__", {})
        setattr(owner, attribute, timed)
        if own:
            self._undo.append(lambda: setattr(owner, attribute, original))
        else:
            self._undo.append(lambda: delattr(owner, attribute))

    def undo(self) -> None:
        for step in reversed(self._undo):
            step()
        self._undo.clear()


def profile_endpoint(env: dict[str, str], secret: str, path: str, *, count: int) -> list[str]:
    """Run ``count`` deliveries, one at a time, through Django's test client in this
    process (same settings, database and broker as the servers) with the endpoint's
    steps timed. Returns the report lines."""
    os.environ.update(env)
    os.environ["LOG_LEVEL"] = "WARNING"  # the servers' log lines are not this report's
    # WhiteNoise warns that STATIC_ROOT is missing (collectstatic is for production).
    warnings.filterwarnings("ignore", "No directory at", UserWarning)
    import django

    django.setup()
    from django.db import connections
    from django.test import Client as DjangoClient
    from encrypted_model_fields import fields as encrypted_fields

    from payments import stripe_gateway
    from webhooks import services, verification
    from webhooks.models import WebhookEvent

    client = DjangoClient(SERVER_NAME="127.0.0.1")
    deliveries = Deliveries(secret, duplicates=0.0, label="profile")
    for _ in range(20):  # warm up: imports, connections, the producer pool
        body, signature = deliveries.next()
        client.post(path, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature)
        client.post("/bench/trivial/", body, content_type="application/json")

    timers = Timers()
    timers.wrap(verification, "verify", "verify (all checks)")
    timers.wrap(stripe_gateway, "verify_webhook_signature", "  stripe signature (verify_header)")
    timers.wrap(verification, "check_envelope", "  schema")
    timers.wrap(services, "event_accept", "accept (store + commit; the relay publishes)")
    timers.wrap(WebhookEvent.objects, "create", "  INSERT")
    timers.wrap(encrypted_fields, "encrypt_str", "    payload encryption (Fernet)")
    timers.wrap(connections["default"], "commit", "  COMMIT (in a transaction only)")
    whole: list[float] = []
    trivial: list[float] = []
    try:
        for _ in range(count):
            body, signature = deliveries.next()
            started = time.perf_counter()
            response = client.post(
                path, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
            )
            whole.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"profile delivery answered {response.status_code}")
            started = time.perf_counter()
            client.post("/bench/trivial/", body, content_type="application/json")
            trivial.append(time.perf_counter() - started)
    finally:
        timers.undo()
    lines = [
        f"{count} deliveries one at a time in-process (Django test client, no HTTP), "
        "mean per delivery:",
        f"  {'whole request (middleware + view)':<46} {statistics.mean(whole) * 1000:7.2f} ms",
        f"  {'trivial view, same body':<46} {statistics.mean(trivial) * 1000:7.2f} ms",
    ]
    for name in timers.order:
        if not timers.calls[name]:
            lines.append(f"  {name:<46}   (not called)")
            continue
        per_call = timers.total[name] / count * 1000
        lines.append(f"  {name:<46} {per_call:7.2f} ms  ({timers.calls[name] / count:.1f} calls)")
    return lines


# --- Reporting ------------------------------------------------------------------------


def _row(label: str, *values: str) -> str:
    return f"  {label:<30}" + "".join(f"{value:>18}" for value in values)


def _figures(result: Result) -> dict[str, str]:
    return {
        "requests answered": f"{result.done}",
        "duration (s)": f"{result.elapsed:.1f}",
        "throughput (req/s)": f"{result.throughput:.0f}",
        "latency p50 (ms)": f"{result.percentile(50):.1f}",
        "latency p95 (ms)": f"{result.percentile(95):.1f}",
        "latency p99 (ms)": f"{result.percentile(99):.1f}",
        "latency max (ms)": f"{result.percentile(100):.1f}",
        "errors": f"{result.error_count}",
    }


def _errors(result: Result) -> str:
    return ", ".join(f"{name} x{count}" for name, count in result.errors.items()) or "none"


def wait_drained(database_url: str, expected: int, timeout: float) -> tuple[dict[str, int], float]:
    """Wait until every stored event is final; returns the status counts and the wait."""
    import psycopg

    started = time.monotonic()
    with psycopg.connect(database_url, autocommit=True) as conn:
        while True:
            rows = conn.execute(
                "SELECT status, count(*) FROM webhooks_webhookevent GROUP BY status"
            ).fetchall()
            counts = dict(rows)
            final = sum(counts.get(status, 0) for status in ("processed", "ignored", "dead"))
            if final >= expected or time.monotonic() - started > timeout:
                return counts, time.monotonic() - started
            time.sleep(0.2)


def exactly_once(database_url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT count(*) FROM webhooks_webhookevent").fetchone()[0]

        def per_event(action: str) -> tuple[int, int, int]:
            counts = conn.execute(
                "SELECT count(*), count(DISTINCT e), coalesce(max(n), 0) FROM ("
                "  SELECT data->>'event_id' AS e,"
                "         count(*) OVER (PARTITION BY data->>'event_id') AS n"
                "  FROM audit_auditentry WHERE action = %s) AS t",
                (action,),
            ).fetchone()
            return counts

        handled = per_event("bench.handled")
        processed = per_event("webhooks.event.processed")
    return {
        "stored events": rows,
        "handler effects": handled[0],
        "events with an effect": handled[1],
        "most effects for one event": handled[2],
        "processed audit entries": processed[0],
        "most processed entries for one event": processed[2],
    }


# --- Main -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=8, help="closed loop (default 8)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, default=None, help="closed loop (default 10)")
    length.add_argument("--count", type=int, default=None, help="closed loop requests instead")
    parser.add_argument("--rate", type=float, default=200, help="fixed rate, per s (default 200)")
    parser.add_argument("--rate-seconds", type=float, default=10, help="(default 10)")
    parser.add_argument("--duplicates", type=float, default=0.10, help="(default 0.10)")
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help=f"recreated at the start, dropped at the end (default {DEFAULT_DATABASE_URL})",
    )
    parser.add_argument("--keep-database", action="store_true", help="leave it at the end")
    parser.add_argument(
        "--redis-url", default=None, help="default: a private redis-server on a free port"
    )
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="threads each (default 2)")
    parser.add_argument("--worker-class", default="gthread", help="(default gthread)")
    parser.add_argument("--celery-concurrency", type=int, default=1, help="(default 1)")
    parser.add_argument(
        "--log-level", default="INFO", help="the servers' LOG_LEVEL (default INFO, as deployed)"
    )
    parser.add_argument(
        "--defer-worker",
        action="store_true",
        help="start the Celery worker only after the load (measures the endpoint without "
        "the worker's processing competing for the same CPUs); it then drains the queue",
    )
    parser.add_argument("--profile-count", type=int, default=300, help="0 skips the profile")
    parser.add_argument(
        "--synchronous-commit",
        choices=("on", "off"),
        default="on",
        help="the servers' synchronous_commit (default on; off only to measure the flush)",
    )
    parser.add_argument(
        "--commit-delay",
        type=int,
        default=0,
        help="the servers' commit_delay in microseconds (group commit; default 0)",
    )
    args = parser.parse_args(argv)
    if args.seconds is None and args.count is None:
        args.seconds = 10.0
    return args


@contextlib.contextmanager
def bench_services(args: argparse.Namespace, workdir: Path) -> Iterator[dict[str, Any]]:
    from bench import stack

    secrets = stack.Secrets.generate()
    redis_server = None
    redis_url = args.redis_url
    if redis_url is None:
        redis_server = stack.RedisServer(workdir)
        redis_url = redis_server.url(0)
    env = stack.service_env(
        database_url=_with_commit_options(args),
        redis_url=redis_url,
        secrets=secrets,
        LOG_LEVEL=args.log_level,
        DATABASE_CONN_MAX_AGE=600,
    )
    stack.recreate_database(args.database_url)
    try:
        if redis_server is not None:
            redis_server.start().wait_ready()
        stack.migrate(env)
        _create_durable_write_table(args.database_url)
        web = stack.Gunicorn(
            workdir,
            stack.tagged(env, "bench-web"),
            workers=args.workers,
            threads=args.threads,
            worker_class=args.worker_class,
        )
        worker = stack.CeleryWorker(
            workdir, stack.tagged(env, "bench-worker"), concurrency=args.celery_concurrency
        )
        services = (web,) if args.defer_worker else (web, worker)
        try:
            with stack.running(*services):
                yield {
                    "env": env,
                    "secrets": secrets,
                    "web": web,
                    "worker": worker,
                    "redis_url": redis_url,
                }
        finally:
            if args.defer_worker:
                worker.stop()
    finally:
        if redis_server is not None:
            redis_server.stop()
        if not args.keep_database:
            stack.drop_database(args.database_url)


def _with_commit_options(args: argparse.Namespace) -> str:
    """The database URL the servers use, with the commit settings to measure."""
    if args.synchronous_commit == "on" and not args.commit_delay:
        return args.database_url
    options = f"-c synchronous_commit={args.synchronous_commit}"
    if args.commit_delay:
        # commit_delay takes effect only with commit_siblings other transactions open.
        options += f" -c commit_delay={args.commit_delay} -c commit_siblings=1"
    separator = "&" if "?" in args.database_url else "?"
    return f"{args.database_url}{separator}options={quote(options)}"


def _create_durable_write_table(database_url: str) -> None:
    """The insert view's table: a key, a time and the body, as plain as a row gets."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_durable_write ("
            " id bigserial PRIMARY KEY,"
            " received_at timestamptz NOT NULL DEFAULT now(),"
            " body text NOT NULL)"
        )


def main(argv: list[str] | None = None) -> None:  # noqa: PLR0915 (one script, read top down)
    args = parse_args(argv)
    say("Webhook ingest benchmark")
    say(
        f"  machine: {os.cpu_count()} CPUs; gunicorn {args.workers} x {args.worker_class} "
        f"({args.threads} threads), Celery worker concurrency {args.celery_concurrency}, "
        f"servers' LOG_LEVEL={args.log_level}"
    )
    length = f"{args.seconds:.0f} s" if args.seconds else f"{args.count} requests"
    say(
        f"  closed loop: {args.connections} keep-alive connections, {length} per endpoint; "
        f"{args.duplicates:.0%} re-deliveries"
    )
    say(f"  database: {args.database_url} ({'kept' if args.keep_database else 'dropped'} at end)")
    with (
        tempfile.TemporaryDirectory(prefix="slotpay-bench-") as tmp,
        bench_services(args, Path(tmp)) as services,
    ):
        say(f"  redis: {services['redis_url']}")
        say()
        secrets, web = services["secrets"], services["web"]
        port = web.port
        ingest_path = f"/webhooks/stripe/{secrets.stripe_path_token}/"
        trivial_path = "/bench/trivial/"
        insert_path = "/bench/insert/"
        secret = secrets.stripe_webhook_secret

        # Warm up every path (imports, database connections).
        warm = ((ingest_path, "warm"), (trivial_path, "warm-trivial"), (insert_path, "warm-insert"))
        for path, label in warm:
            closed_loop(
                label,
                port,
                path,
                Deliveries(secret, duplicates=0.0, label=label),
                connections=args.connections,
                seconds=None,
                count=200,
            )

        def measure(name: str, path: str, label: str) -> tuple[Result, Deliveries]:
            deliveries = Deliveries(secret, duplicates=args.duplicates, label=label)
            return closed_loop(
                name,
                port,
                path,
                deliveries,
                connections=args.connections,
                seconds=args.seconds,
                count=args.count,
            ), deliveries

        trivial, _ = measure("trivial", trivial_path, "t")
        insert, _ = measure("insert", insert_path, "i")
        with WaitSampler(args.database_url) as sampler:
            ingest, ingest_deliveries = measure("ingest", ingest_path, "c")
        stored_so_far = 200 + ingest_deliveries.new
        if args.defer_worker:
            counts, drained_in = {"not processed yet (worker deferred)": stored_so_far}, 0.0
        else:
            counts, drained_in = wait_drained(args.database_url, stored_so_far, timeout=300)

        say("1. Closed loop: acknowledgement, webhook endpoint vs one insert vs trivial view")
        say(
            f"   (synchronous_commit={args.synchronous_commit}, "
            f"commit_delay={args.commit_delay} us)"
        )
        say(_row("", "ingest (webhook)", "insert one row", "trivial view"))
        figures = [_figures(ingest), _figures(insert), _figures(trivial)]
        for label in figures[0]:
            say(_row(label, *(column[label] for column in figures)))
        ratio = ingest.throughput / trivial.throughput if trivial.throughput else 0.0
        to_insert = ingest.throughput / insert.throughput if insert.throughput else 0.0
        insert_ratio = insert.throughput / trivial.throughput if trivial.throughput else 0.0
        say(
            f"  ratio ingest/trivial throughput: {ratio:.2f}; ingest/insert: {to_insert:.2f}; "
            f"insert/trivial: {insert_ratio:.2f}"
        )
        say(f"  ingest answers: {dict(ingest.outcomes)}; errors: {_errors(ingest)}")
        say(f"  insert errors: {_errors(insert)}; trivial errors: {_errors(trivial)}")
        say(
            f"  queue drained {drained_in:.1f} s after the ingest run "
            f"(worker concurrency {args.celery_concurrency}): {counts}"
        )
        say()
        say("   PostgreSQL backends during the ingest run (share of non-idle backend-samples):")
        busy = sum(sampler.states.values()) or 1
        for state, seen in sampler.states.most_common(8):
            say(f"     {state or '(unknown)':<48} {seen / busy:6.1%}")
        say(f"     ({sampler.samples} samples every 20 ms)")
        say()

        fixed = open_loop(
            "fixed",
            port,
            ingest_path,
            Deliveries(secret, duplicates=args.duplicates, label="r"),
            rate=args.rate,
            seconds=args.rate_seconds,
        )
        say(f"2. Fixed rate: {args.rate:.0f} deliveries/s for {args.rate_seconds:.0f} s")
        say(
            f"  sent {fixed.done + fixed.error_count}, answered 200: {fixed.done}, achieved "
            f"{fixed.throughput:.0f}/s; late starts (>5 ms): {fixed.late}"
        )
        say(
            f"  latency from schedule: p50 {fixed.percentile(50):.1f} ms, "
            f"p95 {fixed.percentile(95):.1f} ms, p99 {fixed.percentile(99):.1f} ms, "
            f"max {fixed.percentile(100):.1f} ms"
        )
        say(f"  answers: {dict(fixed.outcomes)}; errors: {_errors(fixed)}")
        say()

        total_stored = stored_so_far + fixed.outcomes.get("stored", 0)
        if args.defer_worker:
            services["worker"].start().wait_ready()
        counts, drained_in = wait_drained(args.database_url, total_stored, timeout=300)
        say("3. Exactly once, after the queue drained")
        say(f"  statuses: {counts} (drained {drained_in:.1f} s after the fixed-rate run)")
        for label, value in exactly_once(args.database_url).items():
            say(f"  {label:<40} {value}")
        say()

        errors = ingest.error_count + insert.error_count + trivial.error_count + fixed.error_count
        say("Targets")
        verdicts = [
            (f"ingest throughput >= 1/2 trivial ({ratio:.2f})", ratio >= 0.5),
            (
                f"p99 < 50 ms at {args.rate:.0f}/s ({fixed.percentile(99):.1f} ms)",
                fixed.percentile(99) < 50,
            ),
            (f"no errors ({errors})", errors == 0),
        ]
        for label, held in verdicts:
            say(f"  {'HELD  ' if held else 'MISSED'} {label}")
        say()

        if args.profile_count:
            say("4. Where the endpoint's time goes")
            for line in profile_endpoint(
                services["env"], secret, ingest_path, count=args.profile_count
            ):
                say(f"  {line}")
            from django.db import connections

            connections.close_all()


if __name__ == "__main__":
    main()
