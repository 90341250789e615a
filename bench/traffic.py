"""Bookings through the whole stack: shared by bench/booking_e2e.py and tests/chaos/.

The pieces, in the order a run uses them:

- :func:`booking_stack` starts what production runs (bench/stack.py): a PostgreSQL
  database (on the shared server, recreated, or a private cluster that may be
  restarted), a private redis-server, gunicorn serving the site *and* the Stripe
  sandbox (``SITE_URL`` is gunicorn's own address, so the application's Stripe client
  talks to the sandbox over real HTTP), Celery workers and beat. Unlike the ingest
  benchmark it runs ``tests.settings``: the domain's own webhook handlers, not the
  bench stand-in.
- :func:`prepare` (run in a subprocess: ``python -m bench.traffic prepare``, with the
  stack's environment) records bookings awaiting payment, as an ``invitee.created``
  would leave them, and opens each one's Checkout Session with the application's own
  ``checkout_start`` (a POST to the sandbox's ``/v1/checkout/sessions``). With
  ``calendly_events`` each booking also gets its scheduled event in the Calendly
  sandbox, so that releasing an unpaid booking can cancel it there.
- :class:`Sandbox` is the customer and the merchant at "Stripe", and the invitee at
  "Calendly", over HTTP only: pays on the hosted Checkout page, expires sessions,
  refunds through ``/v1/refunds``, lists what happened at ``/v1/events``, cancels on
  Calendly's cancellation page and calls Calendly's API.
- :class:`Delivery` and :func:`send_paced`: the events as the providers deliver them,
  signed, posted at a fixed rate by a few threads, re-signed and retried after a 5xx
  or a refused connection as the providers retry, every answer recorded with its time.

Nothing here reads or calls the webhook pipeline's or the audit trail's internals:
what happened is read from the database (bookings, payments, refunds, the inbox) and
from ``manage.py`` commands.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import html
import http.client
import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: bench/ is sys.path[0], not the repository
    sys.path.insert(0, str(REPO))

from bench import stack  # noqa: E402 (after the path fix above)

SETTINGS_MODULE = "tests.settings"
TEST_CARD = "4242 4242 4242 4242"
PRICE = 8000  # minor units (EUR 80.00)


# --- The stack ----------------------------------------------------------------------


@dataclass
class BookingStack:
    """The running services and how to reach them."""

    workdir: Path
    env: dict[str, str]
    secrets: stack.Secrets
    database_url: str
    redis: stack.RedisServer
    web: stack.Gunicorn
    workers: list[stack.CeleryWorker]
    beat: stack.CeleryBeat
    postgres: stack.PostgresCluster | None = None
    _sandbox: Sandbox | None = None

    @property
    def stripe_webhook_url(self) -> str:
        return f"{self.web.url}/webhooks/stripe/{self.secrets.stripe_path_token}/"

    def endpoints(self) -> dict[str, Endpoint]:
        """Each provider's webhook endpoint on gunicorn."""
        return {
            "stripe": Endpoint(
                self.stripe_webhook_url, self.secrets.stripe_webhook_secret, "Stripe-Signature"
            ),
            "calendly": Endpoint(
                f"{self.web.url}/webhooks/calendly/{self.secrets.calendly_path_token}/",
                self.secrets.calendly_signing_key,
                "Calendly-Webhook-Signature",
            ),
        }

    def sandbox(self) -> Sandbox:
        """The run's one :class:`Sandbox` client (closed when the stack stops)."""
        if self._sandbox is None:
            self._sandbox = Sandbox(
                self.web.url, self.secrets.stripe_api_key, self.secrets.calendly_api_token
            )
        return self._sandbox

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()

    def connect(self) -> Any:
        """A new autocommit connection to the application's database (reads)."""
        import psycopg

        return psycopg.connect(self.database_url, autocommit=True, connect_timeout=5)

    def manage(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """``manage.py <args>`` with the services' environment (never raises on exit code)."""
        return subprocess.run(  # noqa: S603 (our own fixed command)
            [sys.executable, str(REPO / "manage.py"), *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )

    def prepare(self, count: int, *, calendly_events: bool = False) -> list[Prepared]:
        """:func:`prepare` in a subprocess with the services' environment."""
        args = ["prepare", "--count", str(count)]
        if calendly_events:
            args.append("--calendly-events")
        return [Prepared(**row) for row in self._in_stack(*args)]

    def book(self, count: int) -> list[Booked]:
        """:func:`book_on_calendly` in a subprocess with the services' environment."""
        return [Booked(**row) for row in self._in_stack("book", "--count", str(count))]

    def _in_stack(self, *args: str) -> list[dict[str, Any]]:
        """``python -m bench.traffic <args>`` with the services' environment: its last
        line of output, JSON."""
        result = subprocess.run(  # noqa: S603 (our own fixed command)
            [sys.executable, "-m", "bench.traffic", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=1800,
        )
        if result.returncode:
            raise stack.ServiceError(f"{args[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr}")
        rows: list[dict[str, Any]] = json.loads(result.stdout.splitlines()[-1])
        return rows

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(
            f"===== {path.name}\n{path.read_text(errors='replace')[-tail:]}"
            for path in sorted(self.workdir.glob("*.log"))
        )


# Small on purpose: a dead worker's claim is taken over after 20 s, a row stored while
# Redis was down is re-enqueued after 5 s, retries start after 1 s, beat sweeps every
# 2 s and the outbox relay runs as configured (every 10 s).
FAST_RECOVERY = {
    "WEBHOOK_PROCESSING_TIMEOUT_SECONDS": 20,
    "WEBHOOK_REQUEUE_AFTER_SECONDS": 5,
    "WEBHOOK_SWEEP_INTERVAL_SECONDS": 2,
    "WEBHOOK_RETRY_BASE_SECONDS": 1,
    "WEBHOOK_RETRY_CAP_SECONDS": 5,
}


@contextlib.contextmanager
def booking_stack(
    workdir: Path,
    *,
    database_url: str | None = None,
    private_postgres: bool = False,
    postgres_settings: dict[str, str | int] | None = None,
    workers: int = 2,
    concurrency: int = 1,
    web_workers: int = 2,
    web_threads: int = 4,
    keep_database: bool = False,
    **overrides: str | int | float,
) -> Iterator[BookingStack]:
    """Every service, started and migrated; stopped (and the database dropped) on exit.

    ``database_url`` names a database on a server that is there already (recreated at
    the start); ``private_postgres`` starts a cluster of our own instead, whose
    ``slotpay_chaos`` database the run may take down and bring back.
    """
    postgres = None
    if private_postgres:
        postgres = stack.PostgresCluster(workdir, settings=postgres_settings)
        database_url = postgres.url("slotpay_chaos")
    if database_url is None:
        raise ValueError("give database_url or private_postgres=True")
    secrets = stack.Secrets.generate()
    redis = stack.RedisServer(workdir)
    port = stack.free_port()
    site = f"http://127.0.0.1:{port}"
    env = stack.service_env(
        database_url=database_url,
        redis_url=redis.url(0),
        secrets=secrets,
        settings_module=SETTINGS_MODULE,
        SITE_URL=site,
        EMAIL_URL="dummymail://",
        DATABASE_CONN_MAX_AGE=600,
        LOG_LEVEL="WARNING",
        **{**FAST_RECOVERY, **overrides},
    )
    try:
        if postgres is not None:
            postgres.start().wait_ready()
        stack.recreate_database(database_url)
        stack.migrate(env)
        web = stack.Gunicorn(
            workdir,
            stack.tagged(env, "e2e-web"),
            workers=web_workers,
            threads=web_threads,
            port=port,
        )
        pool = [
            stack.CeleryWorker(workdir, stack.tagged(env, "e2e-worker"), concurrency=concurrency)
            for _ in range(workers)
        ]
        for number, worker in enumerate(pool):
            worker.name = f"worker{number}"
        beat = stack.CeleryBeat(workdir, stack.tagged(env, "e2e-beat"))
        with stack.running(redis, web, *pool, beat):
            run = BookingStack(
                workdir=workdir,
                env=env,
                secrets=secrets,
                database_url=database_url,
                redis=redis,
                web=web,
                workers=pool,
                beat=beat,
                postgres=postgres,
            )
            try:
                yield run
            finally:
                run.close()
    finally:
        redis.stop()
        if postgres is not None:
            postgres.destroy()
        elif not keep_database:
            with contextlib.suppress(Exception):
                stack.drop_database(database_url)


# --- Bookings awaiting payment -------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """One booking awaiting payment and its open Checkout Session."""

    booking: int
    reference: str
    session: str
    url: str
    calendly_event: str = ""
    calendly_invitee: str = ""


def prepare(count: int, *, calendly_events: bool = False, threads: int = 4) -> list[Prepared]:
    """In a process with the services' environment (Django set up here): ``count``
    bookings awaiting payment, each with its consent and its Checkout Session.

    The bookings are written as ``invitee.created`` leaves a booking whose client came
    through our booking page (a client, the price, the policy agreed); creating them
    through Calendly's webhook would need a signed-in client per booking. The sessions
    are the application's own: ``bookings.checkout.checkout_start``, which asks the
    sandbox over HTTP and records the payment.
    """
    import secrets as random_tokens
    from datetime import timedelta

    import django

    django.setup()
    from django.db import connections
    from django.utils import timezone

    from accounts.models import Builder, User
    from bookings import checkout
    from bookings.models import Booking, EventType, PolicyConsent, invitee_key

    token = random_tokens.token_hex(4)
    builder = Builder.objects.create(name=f"Bench Studio {token}", slug=f"bench-{token}")
    event_type = EventType.objects.create(
        builder=builder,
        calendly_event_type_uri=f"https://api.calendly.com/event_types/ET{token}",
        scheduling_url=f"https://calendly.com/bench-{token}/review",
        title="Portfolio review",
        duration_minutes=60,
        price_amount=PRICE,
        currency="eur",
    )
    clients = [
        User.objects.create_user(email=f"client{n}-{token}@bench.example", name=f"Client {n}")
        for n in range(min(count, 20))
    ]
    events = _calendly_events(count, token) if calendly_events else [("", "")] * count
    # Far enough ahead that every refund tier applies in full.
    first_start = timezone.now() + timedelta(days=30)
    bookings = []
    for number in range(count):
        start = first_start + timedelta(hours=number)
        event_uuid = events[number][0] or f"E{token}{number:06d}"
        invitee_uuid = events[number][1] or f"I{token}{number:06d}"
        invitee_uri = (
            f"https://api.calendly.com/scheduled_events/{event_uuid}/invitees/{invitee_uuid}"
        )
        bookings.append(
            Booking(
                client=clients[number % len(clients)],
                builder=builder,
                event_type=event_type,
                calendly_invitee_uri=invitee_uri,
                calendly_invitee_uuid=invitee_key(invitee_uri),
                calendly_event_uri=f"https://api.calendly.com/scheduled_events/{event_uuid}",
                start_at=start,
                end_at=start + timedelta(minutes=60),
                invitee_time_zone="Europe/Berlin",
                invitee_name=f"Client {number}",
                invitee_email=f"client{number % len(clients)}-{token}@bench.example",
                price_amount=PRICE,
                currency="eur",
            )
        )
    bookings = Booking.objects.bulk_create(bookings, batch_size=500)
    PolicyConsent.objects.bulk_create(
        [
            PolicyConsent(
                user_id=booking.client_id,
                event_type=event_type,
                booking=booking,
                policy_version=event_type.refund_policy_version,
                policy=event_type.refund_policy,
            )
            for booking in bookings
        ],
        batch_size=500,
    )

    def start(number: int) -> Prepared:
        booking = bookings[number]
        try:
            payment = checkout.checkout_start(booking=booking)
        finally:
            connections.close_all()
        return Prepared(
            booking=booking.pk,
            reference=str(booking.reference),
            session=payment.checkout_session_id,
            url=payment.checkout_url,
            calendly_event=events[number][0],
            calendly_invitee=events[number][1],
        )

    with ThreadPoolExecutor(max_workers=threads) as executor:
        return list(executor.map(start, range(count)))


def _calendly_events(count: int, token: str) -> list[tuple[str, str]]:
    """``count`` scheduled events in the Calendly sandbox, each with its invitee (the
    provider's own records, written as its scheduling page would), one hour apart;
    their UUIDs (event, invitee)."""
    from datetime import timedelta

    from django.utils import timezone

    from sandbox.calendly_sandbox.models import Invitee, ScheduledEvent
    from sandbox.calendly_sandbox.services import host_with_event_type_create

    remote = host_with_event_type_create(
        host_name=f"Bench Host {token}",
        host_email=f"host-{token}@bench.example",
        host_slug=f"bench-{token}",
        host_timezone="Europe/Berlin",
        event_name="Portfolio review",
        event_slug="review",
        duration=60,
    )
    first_start = timezone.now() + timedelta(days=30)
    events = ScheduledEvent.objects.bulk_create(
        [
            ScheduledEvent(
                event_type=remote,
                host=remote.host,
                name=remote.name,
                start_time=first_start + timedelta(hours=number),
                end_time=first_start + timedelta(hours=number, minutes=60),
            )
            for number in range(count)
        ],
        batch_size=500,
    )
    invitees = Invitee.objects.bulk_create(
        [
            Invitee(
                scheduled_event=event,
                name=f"Client {number}",
                email=f"client{number}-{token}@bench.example",
                timezone="Europe/Berlin",
            )
            for number, event in enumerate(events)
        ],
        batch_size=500,
    )
    return [(event.uuid, invitee.uuid) for event, invitee in zip(events, invitees, strict=True)]


# --- Bookings made on Calendly -----------------------------------------------------------


@dataclass(frozen=True)
class Booked:
    """One invitee booked on the Calendly sandbox under a client's booking intent."""

    invitee: str  # the sandbox's invitee UUID
    event: str  # its scheduled event's UUID


# A sandbox host has a few hundred fifteen-minute slots over its fourteen days.
BOOKINGS_PER_HOST = 100


def book_on_calendly(count: int, site: str) -> list[Booked]:
    """In a process with the services' environment: ``count`` bookings made as a client
    makes them, up to Calendly's ``invitee.created``, which is left for the caller to
    deliver.

    Each client agrees to a session's refund policy (``consent_give``, as our session
    page records it) and gets the booking intent our page puts in ``utm_content``;
    the invitee then books a slot at least three days ahead (every refund tier
    applies in full) on the Calendly sandbox with it, and the sandbox writes its
    ``invitee.created`` for the subscription. A host, its Calendly event type and our
    builder and session for every BOOKINGS_PER_HOST bookings.
    """
    import secrets as random_tokens
    from datetime import timedelta

    import django

    django.setup()
    from django.utils import timezone

    from accounts.models import Builder, User
    from bookings import services
    from bookings.models import EventType
    from sandbox.calendly_sandbox import services as calendly
    from sandbox.calendly_sandbox.resources import Urls

    token = random_tokens.token_hex(4)
    urls = Urls(site=site)
    clients = [
        User.objects.create_user(email=f"client{n}-{token}@bench.example", name=f"Client {n}")
        for n in range(min(count, 20))
    ]
    earliest = timezone.now() + timedelta(days=3)
    booked: list[Booked] = []
    for first in range(0, count, BOOKINGS_PER_HOST):
        slug = f"bench-{token}-{first // BOOKINGS_PER_HOST}"
        remote = calendly.host_with_event_type_create(
            host_name=f"Bench Host {slug}",
            host_email=f"host-{slug}@bench.example",
            host_slug=slug,
            host_timezone="Europe/Berlin",
            event_name="Portfolio review",
            event_slug="review",
            duration=15,
        )
        event_type = EventType.objects.create(
            builder=Builder.objects.create(name=f"Bench Studio {slug}", slug=slug),
            calendly_event_type_uri=urls.event_type(remote),
            scheduling_url=f"{site}/sandbox/calendly/{slug}/review/",
            title="Portfolio review",
            duration_minutes=15,
            price_amount=PRICE,
            currency="eur",
        )
        slots = [slot for slot in calendly.open_slots(remote) if slot >= earliest]
        numbers = range(first, min(count, first + BOOKINGS_PER_HOST))
        if len(slots) < len(numbers):
            raise RuntimeError(f"the sandbox host has {len(slots)} slots for {len(numbers)}")
        for number, start in zip(numbers, slots, strict=False):
            client = clients[number % len(clients)]
            consent = services.consent_give(user=client, event_type=event_type, ip=None)
            invitee = calendly.invitee_book(
                event_type=remote,
                start=start,
                name=client.name,
                email=client.email,
                invitee_timezone="Europe/Berlin",
                tracking={"utm_source": "slotpay", "utm_content": services.issue_intent(consent)},
                urls=urls,
            )
            booked.append(Booked(invitee=invitee.uuid, event=invitee.scheduled_event.uuid))
    return booked


# --- The Stripe sandbox, over HTTP ----------------------------------------------------


class SandboxError(RuntimeError):
    """The sandbox answered something other than what the step needs."""


class Sandbox:
    """The customer (hosted Checkout page) and the merchant (API) at "Stripe".

    One keep-alive connection per thread; every call is plain HTTP to gunicorn.
    """

    def __init__(self, site: str, api_key: str, calendly_token: str = "") -> None:
        parts = urlsplit(site)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.api_key = api_key
        self.calendly_token = calendly_token
        self._local = threading.local()
        self._opened: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
            self._local.connection = connection
            with self._lock:
                self._opened.append(connection)
        return connection

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        for attempt in range(3):
            connection = self._connection()
            try:
                connection.request(method, path, body=body, headers=headers or {})
                response = connection.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise
                time.sleep(0.5)
                continue
            if response.will_close:
                connection.close()
                self._local.connection = None
            return response.status, {k.lower(): v for k, v in response.getheaders()}, payload
        raise AssertionError("unreachable")

    def api(self, method: str, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        body = None
        query = urlencode(params or {})
        if method == "POST":
            body = query.encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif query:
            path = f"{path}?{query}"
        status, _, payload = self.request(method, f"/sandbox/stripe/v1/{path}", body, headers)
        if status != 200:
            raise SandboxError(f"{method} {path}: {status} {payload[:300]!r}")
        return json.loads(payload)

    def submit(
        self, path: str, fields: dict[str, str] | Callable[[bytes], dict[str, str]]
    ) -> tuple[int, bytes]:
        """Fill in a page's form as a browser does: GET it, then POST ``fields`` (or
        what ``fields`` picks from the page) with its CSRF token and cookie. Returns
        the POST's status and body."""
        status, headers, page = self.request("GET", path)
        if status != 200:
            raise SandboxError(f"GET {path}: {status}")
        cookie = re.search(r"(\w*csrftoken)=([^;]+)", headers.get("set-cookie", ""))
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if cookie is None or token is None:
            raise SandboxError(f"no CSRF token on {path}")
        chosen = fields(page) if callable(fields) else fields
        form = {"csrfmiddlewaretoken": html.unescape(token.group(1).decode()), **chosen}
        status, _, page = self.request(
            "POST",
            path,
            urlencode(form).encode(),
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"{cookie.group(1)}={cookie.group(2)}",
            },
        )
        return status, page

    def pay(self, checkout_url: str, card: str = TEST_CARD) -> None:
        """Pay on the hosted Checkout page, as a customer does."""
        path = urlsplit(checkout_url).path
        status, page = self.submit(
            path,
            {
                "method": "card",
                "number": card,
                "expiry": "12 / 34",
                "cvc": "123",
                "name": "Casey Client",
                "email": "casey@example.com",
            },
        )
        if status != 303:
            raise SandboxError(f"POST {path}: {status} {page[:300]!r}")

    def calendly_cancel(self, invitee_uuid: str, reason: str = "Plans changed") -> None:
        """The invitee cancels on Calendly's cancellation page."""
        path = f"/sandbox/calendly/cancellations/{invitee_uuid}/"
        status, page = self.submit(path, {"reason": reason})
        if status != 302:
            raise SandboxError(f"POST {path}: {status} {page[:300]!r}")

    def calendly_reschedule(self, invitee_uuid: str, reason: str = "Another day") -> None:
        """The invitee moves the booking to the latest open slot on Calendly's
        rescheduling page (Calendly then cancels it as rescheduled and books anew)."""
        path = f"/sandbox/calendly/reschedulings/{invitee_uuid}/"

        def latest_slot(page: bytes) -> dict[str, str]:
            slots = re.findall(rb'name="start" value="([^"]+)"', page)
            if not slots:
                raise SandboxError(f"no open slot on {path}")
            return {"start": html.unescape(slots[-1].decode()), "reason": reason}

        status, page = self.submit(path, latest_slot)
        if status != 302:
            raise SandboxError(f"POST {path}: {status} {page[:300]!r}")

    def calendly(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Calendly's API (the sandbox's), with the API token: the answer's resource."""
        headers = {"Authorization": f"Bearer {self.calendly_token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        status, _, payload = self.request(method, f"/sandbox/calendly/api/{path}", data, headers)
        if status not in (200, 201):
            raise SandboxError(f"{method} {path}: {status} {payload[:300]!r}")
        return json.loads(payload)["resource"]

    def session(self, session_id: str) -> dict[str, Any]:
        return self.api("GET", f"checkout/sessions/{session_id}")

    def expire(self, session_id: str) -> dict[str, Any]:
        return self.api("POST", f"checkout/sessions/{session_id}/expire")

    def refund(self, payment_intent: str, amount: int | None = None) -> dict[str, Any]:
        """A refund made at Stripe (the dashboard's), not asked for by the application."""
        params: dict[str, Any] = {"payment_intent": payment_intent}
        if amount is not None:
            params["amount"] = amount
        return self.api("POST", "refunds", params)

    def events(self) -> list[dict[str, Any]]:
        """Every event the sandbox holds, oldest first."""
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100}
        while True:
            page = self.api("GET", "events", params)
            found.extend(page["data"])
            if not page["has_more"]:
                return list(reversed(found))
            params["starting_after"] = page["data"][-1]["id"]

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            for connection in self._opened:
                connection.close()
            self._opened.clear()


def each(function: Any, items: Iterable[Any], threads: int = 4) -> list[Any]:
    """``function`` over ``items`` on a few threads, in order (sandbox steps)."""
    with ThreadPoolExecutor(max_workers=threads) as executor:
        return list(executor.map(function, items))


# --- Deliveries ------------------------------------------------------------------------


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """A signature header as Stripe and Calendly send it:
    ``t=<unix>,v1=HMAC-SHA256(secret, "<t>.<body>")``."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
    return f"t={stamp},v1={digest.hexdigest()}"


@dataclass(frozen=True)
class Delivery:
    """One event as its provider sends it (the body byte for byte)."""

    event_id: str  # as our inbox keys it
    event_type: str
    booking: str  # our booking reference ("" if unknown)
    body: bytes
    provider: str = "stripe"

    @classmethod
    def of(cls, event: dict[str, Any], booking: str = "") -> Delivery:
        """A Stripe event."""
        return cls(event["id"], event["type"], booking, json.dumps(event).encode())


@dataclass(frozen=True)
class Endpoint:
    """Where a provider's deliveries go and the secret they are signed with (Stripe
    and Calendly sign alike: ``t=<unix>,v1=HMAC-SHA256(secret, "<t>.<body>")``)."""

    url: str
    secret: str
    header: str


def bookings_of(events: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Each event's booking reference: sessions and charges carry it in metadata, with
    their PaymentIntent; refunds and disputes name their charge and PaymentIntent."""
    owners: dict[str, str] = {}  # charge or PaymentIntent id -> booking reference
    found: dict[str, str] = {}
    for event in events:
        obj = event["data"]["object"]
        reference = (obj.get("metadata") or {}).get("booking", "")
        if reference:
            found[event["id"]] = reference
            for key in ("payment_intent", "latest_charge"):
                if obj.get(key):
                    owners[obj[key]] = reference
            if obj.get("object") in ("charge", "payment_intent"):
                owners[obj["id"]] = reference
    for event in events:
        obj = event["data"]["object"]
        owner = owners.get(obj.get("charge") or "") or owners.get(obj.get("payment_intent") or "")
        if event["id"] not in found and owner:
            found[event["id"]] = owner
    return found


@dataclass
class Sent:
    """What became of one delivery: every answer, with the time it came."""

    delivery: Delivery
    first_post: float = 0.0  # wall clock (time.time()) when the first attempt started
    answers: list[tuple[float, int]] = field(default_factory=list)  # (time, HTTP status or 0)
    acknowledged: float | None = None  # when a 200 came back
    outcome: str = ""  # the 200's "status" (stored, duplicate, ignored, ...)

    @property
    def ok(self) -> bool:
        return self.acknowledged is not None


class _Poster:
    """One keep-alive connection to gunicorn (reopened when it closes or fails)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "", parts.port or 80
        self.connection: http.client.HTTPConnection | None = None

    def post(self, endpoint: Endpoint, body: bytes) -> tuple[int, bytes]:
        """The answer's status (0: no answer) and body."""
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        headers = {
            "Content-Type": "application/json",
            endpoint.header: sign(endpoint.secret, body),
        }
        path = urlsplit(endpoint.url).path
        try:
            self.connection.request("POST", path, body=body, headers=headers)
            response = self.connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            return 0, b""
        if response.will_close:
            self.close()
        return response.status, payload

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def send_paced(
    endpoints: dict[str, Endpoint],
    deliveries: Sequence[Delivery],
    *,
    rate: float,
    threads: int = 16,
    retry_for: float = 120.0,
) -> list[Sent]:
    """Post ``deliveries`` in order at ``rate`` per second (each at its scheduled time,
    whatever the answers take) to their provider's endpoint, each re-signed and retried
    with backoff after a 5xx, a 429 or a refused connection, as the providers retry,
    for up to ``retry_for`` seconds. ``rate`` 0 sends as fast as the threads go."""
    results = [Sent(delivery) for delivery in deliveries]
    tickets = itertools.count()
    begin = time.perf_counter() + 0.1
    server = next(iter(endpoints.values())).url  # every endpoint is on one server

    def run() -> None:
        poster = _Poster(server)
        try:
            while (number := next(tickets)) < len(results):
                if rate:
                    pause = begin + number / rate - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
                sent = results[number]
                _deliver(poster, endpoints[sent.delivery.provider], sent, retry_for)
        finally:
            poster.close()

    workers = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results


def _deliver(poster: _Poster, endpoint: Endpoint, sent: Sent, retry_for: float) -> None:
    sent.first_post = time.time()
    backoff = 0.25
    while True:
        status, payload = poster.post(endpoint, sent.delivery.body)
        now = time.time()
        sent.answers.append((now, status))
        if status == 200:
            sent.acknowledged = now
            with contextlib.suppress(ValueError, AttributeError):
                sent.outcome = str(json.loads(payload).get("status", ""))
            return
        if (status and status < 500 and status != 429) or now - sent.first_post > retry_for:
            return  # refused for good (providers stop on a 4xx), or out of retries
        time.sleep(backoff)
        backoff = min(backoff * 2, 4.0)


# --- Reading the outcome ---------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile (``p`` in 0-100) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def confirmed_at(connection: Any, booking_ids: Sequence[int]) -> dict[int, float]:
    """When each confirmed booking of ``booking_ids`` was confirmed (unix time): the
    booking's ``status_changed_at``, written by the confirming transition."""
    rows = connection.execute(
        "SELECT id, extract(epoch FROM status_changed_at) FROM bookings_booking "
        "WHERE id = ANY(%s) AND status = 'confirmed'",
        (list(booking_ids),),
    ).fetchall()
    return {pk: float(at) for pk, at in rows}


def wait_confirmed(
    connection: Any, booking_ids: Sequence[int], *, timeout: float, interval: float = 0.5
) -> dict[int, float]:
    """Poll (one query over the outstanding bookings per ``interval``) until every one
    is confirmed or ``timeout`` passes; returns those confirmed."""
    deadline = time.monotonic() + timeout
    done: dict[int, float] = {}
    outstanding = list(booking_ids)
    while outstanding and time.monotonic() < deadline:
        done.update(confirmed_at(connection, outstanding))
        outstanding = [pk for pk in outstanding if pk not in done]
        if outstanding:
            time.sleep(interval)
    return done


# --- Command line (the preparation subprocess) ------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run inside the stack's environment.")
    commands = parser.add_subparsers(dest="command", required=True)
    prepare_cmd = commands.add_parser("prepare", help="bookings awaiting payment (JSON out)")
    prepare_cmd.add_argument("--count", type=int, required=True)
    prepare_cmd.add_argument("--calendly-events", action="store_true")
    book_cmd = commands.add_parser("book", help="bookings made on Calendly (JSON out)")
    book_cmd.add_argument("--count", type=int, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS_MODULE)
    rows: Sequence[Prepared | Booked]
    if args.command == "book":
        rows = book_on_calendly(args.count, os.environ["SITE_URL"])
    else:
        rows = prepare(args.count, calendly_events=args.calendly_events)
    sys.stdout.write(json.dumps([vars(row) for row in rows]) + "\n")


if __name__ == "__main__":
    main()
