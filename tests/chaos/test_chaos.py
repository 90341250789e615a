"""Chaos: the whole stack keeps its promises while its parts fail under it.

Through gunicorn, two real Celery workers, beat, a private PostgreSQL cluster and a
private Redis (bench/traffic.py, bench/stack.py), clients book, pay, cancel,
reschedule, are refunded and dispute, and the providers' signed deliveries come in
out of order, twice, and while the services fail.

Wave 0: clients book on Calendly's page under their booking intents (the consent our
session page records, ``bench.traffic.book_on_calendly``); Calendly's
``invitee.created`` deliveries create the bookings, and the application opens each
one's Checkout Session at "Stripe" (the sandbox, over HTTP). Then at Stripe most are
paid on the hosted page, some never are and their sessions expire (the booking is
released and its Calendly event cancelled), some are refunded once or several times
from Stripe's side, some are disputed by the cardholder. Wave 1 delivers Stripe's
events. Wave 2: some paid invitees cancel on Calendly's page (our handlers refund
them at Stripe) and some reschedule (the new booking takes the payment over), and
Calendly's deliveries of those go the same way. Wave 3 delivers what Stripe then says
about our refunds.

Every wave sends each booking's deliveries in a shuffled order, 20 % of them twice,
interleaved with the other bookings', at a fixed rate; a 5xx or a refused connection
is retried as the providers retry. Meanwhile a worker is SIGKILLed three times (in
waves 0, 1 and 2: mid-handler, mid-Checkout, mid-refund), Redis is restarted once,
empty, and PostgreSQL once (wave 1).

Afterwards: every delivery acknowledged and its event stored and processed (or
deliberately ignored), none dead; nothing applied twice (one payment per booking, one
refund row per Stripe refund); every booking, payment and Calendly event in the state
its events imply (a rescheduled booking's payment on its successor); our ledger equal
to the sandbox's, booking by booking; ``manage.py audit_verify --full`` clean; no 5xx
outside the PostgreSQL restart window. A summary of the counts is printed at the end
of the run (CI's too).

The size: SLOTPAY_CHAOS_BOOKINGS bookings (CI: 120, about 630 deliveries, two to
four minutes on this 2-core machine); ``bench/chaos.py --scale full`` runs 2,000.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bench import stack, traffic

pytestmark = [
    pytest.mark.slow,
    pytest.mark.connections,
]

BOOKINGS = int(os.environ.get("SLOTPAY_CHAOS_BOOKINGS", "120"))
RATE = float(os.environ.get("SLOTPAY_CHAOS_RATE", "25"))  # deliveries per second
SEED = int(os.environ.get("SLOTPAY_CHAOS_SEED", "14"))
DUPLICATES = 0.20
DISPUTE_CARD = "4000 0000 0000 0259"  # succeeds, then the cardholder disputes it
PARTIAL = 1000  # minor units per partial refund
# Each PostgreSQL connection a process held when the server went down fails once
# more after it is back (gunicorn's threads): their 5xx count as the restart's.
RESTART_GRACE = 10.0  # seconds
DRAIN_TIMEOUT = float(os.environ.get("SLOTPAY_CHAOS_DRAIN_SECONDS", "240"))

FINAL = ("processed", "ignored", "dead")


def say(text: str) -> None:
    """Progress, for a person watching a long run (-s)."""
    sys.stderr.write(f"[chaos {time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()


INBOX = "SELECT event_id, status FROM webhooks_webhookevent"
# What the Calendly sandbox sent its subscription (to a closed port: this test delivers).
CALENDLY_SENT = "SELECT body FROM sandbox_delivery WHERE provider = 'calendly' AND event_type = %s"


# --- What happens to each booking at "Stripe" ---------------------------------------------


@dataclass
class Plan:
    """One booking's fate, decided up front from the seed."""

    prepared: traffic.Prepared
    kind: str  # "expire", "dispute" or "pay"
    refunds: list[int | None] = field(default_factory=list)  # amounts; None: the rest
    cancel: bool = False  # the invitee cancels on Calendly once the payment is in
    reschedule: bool = False  # the invitee moves it on Calendly once the payment is in
    payment_intent: str = ""

    @property
    def refunded(self) -> int:
        """What the refunds add up to, given the price."""
        total = 0
        for amount in self.refunds:
            total += traffic.PRICE - total if amount is None else amount
        return total

    def expected(self) -> tuple[str, str]:
        """(booking status, payment status) that the events imply; a rescheduled
        booking's payment is its successor's, which is confirmed and paid."""
        if self.reschedule:
            return "rescheduled", "paid"
        if self.kind != "pay":  # "expire" or "dispute"
            return {"expire": ("expired", "expired"), "dispute": ("disputed", "disputed")}[
                self.kind
            ]
        if self.cancel:
            # Three days ahead or more: the policy gives back everything that remains.
            return "canceled", "refunded"
        if self.refunded == 0:
            return "confirmed", "paid"
        if self.refunded >= traffic.PRICE:
            return "confirmed", "refunded"
        return "confirmed", "partially_refunded"


def plans_for(prepared: list[traffic.Prepared], rng: random.Random) -> list[Plan]:
    plans = []
    for row in prepared:
        roll = rng.random()
        if roll < 0.08:
            plans.append(Plan(row, "expire"))
        elif roll < 0.13:
            plans.append(Plan(row, "dispute"))
        else:
            count = rng.choices([0, 1, 2, 3], weights=[40, 25, 20, 15])[0]
            refunds: list[int | None] = [PARTIAL] * count
            if count and rng.random() < 0.5:
                refunds[-1] = None  # the last one refunds the rest
            cancel = rng.random() < 0.15
            reschedule = not count and not cancel and rng.random() < 0.3
            plans.append(Plan(row, "pay", refunds, cancel=cancel, reschedule=reschedule))
    return plans


def act(sandbox: traffic.Sandbox, plans: list[Plan]) -> None:
    """The customers pay (or walk away), the merchant refunds, cardholders dispute."""

    def one(plan: Plan) -> None:
        if plan.kind == "expire":
            sandbox.expire(plan.prepared.session)
            return
        card = DISPUTE_CARD if plan.kind == "dispute" else traffic.TEST_CARD
        sandbox.pay(plan.prepared.url, card)
        plan.payment_intent = sandbox.session(plan.prepared.session)["payment_intent"]
        for amount in plan.refunds:
            sandbox.refund(plan.payment_intent, amount)

    traffic.each(one, plans)


def open_disputes(run: traffic.BookingStack, plans: list[Plan]) -> None:
    """Let the sandbox's clock run: disputes open a few seconds after the payment, and
    their funds are withdrawn a little later. ``sandbox_deliver`` does the due work (its
    own deliveries go nowhere: SANDBOX_STRIPE_WEBHOOK_URL is a closed port)."""
    disputed = sum(plan.kind == "dispute" for plan in plans)
    sandbox = run.sandbox()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        events = Counter(event["type"] for event in sandbox.events())
        if events["charge.dispute.funds_withdrawn"] >= disputed:
            return
        time.sleep(1)
        result = run.manage("sandbox_deliver")
        assert result.returncode == 0, result.stderr
    pytest.fail(f"the sandbox opened {events['charge.dispute.created']} of {disputed} disputes")


# --- Deliveries -----------------------------------------------------------------------------


def stripe_deliveries(events: list[dict[str, Any]]) -> dict[str, list[traffic.Delivery]]:
    """The sandbox's Stripe events as deliveries, by booking reference."""
    references = traffic.bookings_of(events)
    per_booking: dict[str, list[traffic.Delivery]] = defaultdict(list)
    for event in events:
        reference = references.get(event["id"])
        if reference:
            per_booking[reference].append(traffic.Delivery.of(event, reference))
    return per_booking


def calendly_sent(run: traffic.BookingStack, event_type: str) -> list[tuple[str, str, bytes]]:
    """Every ``event_type`` body the Calendly sandbox made for its subscription:
    (invitee UUID, the invitee it reschedules or "", body)."""
    found = []
    with run.connect() as conn:
        for (body,) in conn.execute(CALENDLY_SENT, (event_type,)).fetchall():
            payload = json.loads(body)["payload"]
            old = (payload.get("old_invitee") or "").rstrip("/").rsplit("/", 1)[-1]
            found.append((_last_part(payload["uri"]), old, body.encode()))
    return found


def _last_part(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def calendly_delivery(event_type: str, invitee: str, body: bytes, booking: str) -> traffic.Delivery:
    return traffic.Delivery(
        event_id=f"{event_type}:{invitee}",
        event_type=event_type,
        booking=booking,
        body=body,
        provider="calendly",
    )


def bookings_made(
    run: traffic.BookingStack, booked: list[traffic.Booked]
) -> dict[str, list[traffic.Delivery]]:
    """Wave 0: Calendly's ``invitee.created`` for each booking made, by invitee."""
    ours = {row.invitee for row in booked}
    per_invitee: dict[str, list[traffic.Delivery]] = defaultdict(list)
    for invitee, _, body in calendly_sent(run, "invitee.created"):
        if invitee in ours:
            per_invitee[invitee].append(calendly_delivery("invitee.created", invitee, body, ""))
    missing = ours - set(per_invitee)
    assert not missing, f"the Calendly sandbox sent no invitee.created for {sorted(missing)[:3]}"
    return per_invitee


def checkouts_opened(
    run: traffic.BookingStack, booked: list[traffic.Booked], timeout: float
) -> list[traffic.Prepared]:
    """Each booking the deliveries created, with the Checkout Session the application
    opened for it (a task after the handler's commit), once all are open."""
    query = (
        "SELECT b.id, b.reference, p.checkout_session_id, p.checkout_url, "
        "b.calendly_event_uri, b.calendly_invitee_uuid, b.client_id "
        "FROM bookings_booking b JOIN payments_payment p ON p.booking_id = b.id "
        "WHERE p.status = 'open' AND p.checkout_url <> ''"
    )
    deadline = time.monotonic() + timeout
    while True:
        with run.connect() as conn:
            found = rows(conn, query)
        if len(found) >= len(booked) or time.monotonic() > deadline:
            break
        time.sleep(1)
    opened = {
        invitee: traffic.Prepared(
            booking=pk,
            reference=str(reference),
            session=session,
            url=url,
            calendly_event=_last_part(event_uri),
            calendly_invitee=invitee,
        )
        for pk, reference, session, url, event_uri, invitee, client in found
        if client is not None
    }
    missing = [row.invitee for row in booked if row.invitee not in opened]
    assert not missing, f"{len(missing)} bookings without Checkout: {missing[:5]}\n{run.logs()}"
    return [opened[row.invitee] for row in booked]


def calendly_changes(
    run: traffic.BookingStack, plans: list[Plan], delivered: set[str]
) -> dict[str, list[traffic.Delivery]]:
    """Wave 2: invitees cancel or reschedule on Calendly's pages; every Calendly
    delivery not sent yet (those, and the cancellations of the events our handlers
    released), by booking reference."""
    sandbox = run.sandbox()
    traffic.each(
        lambda plan: sandbox.calendly_cancel(plan.prepared.calendly_invitee),
        [plan for plan in plans if plan.cancel],
    )
    for plan in plans:  # one at a time: each takes the host's latest open slot
        if plan.reschedule:
            sandbox.calendly_reschedule(plan.prepared.calendly_invitee)
    owner = {plan.prepared.calendly_invitee: plan.prepared.reference for plan in plans}
    per_booking: dict[str, list[traffic.Delivery]] = defaultdict(list)
    for event_type in ("invitee.canceled", "invitee.created"):
        for invitee, old, body in calendly_sent(run, event_type):
            reference = owner.get(invitee) or owner.get(old)
            if f"{event_type}:{invitee}" in delivered or reference is None:
                continue
            per_booking[reference].append(calendly_delivery(event_type, invitee, body, reference))
    changed = [plan for plan in plans if plan.cancel or plan.reschedule]
    missing = [plan for plan in changed if plan.prepared.reference not in per_booking]
    assert not missing, f"the Calendly sandbox sent nothing for {missing[:3]}"
    return per_booking


def subscribe_to_calendly(run: traffic.BookingStack) -> None:
    """A Calendly subscription, signed with our key, to a closed port: this test
    delivers what the sandbox writes for it."""
    sandbox = run.sandbox()
    organization = sandbox.calendly("GET", "users/me")["current_organization"]
    sandbox.calendly(
        "POST",
        "webhook_subscriptions",
        {
            "url": "http://127.0.0.1:9/nowhere/",
            "events": ["invitee.created", "invitee.canceled"],
            "organization": organization,
            "scope": "organization",
            "signing_key": run.secrets.calendly_signing_key,
        },
    )


def mixed(
    per_booking: dict[str, list[traffic.Delivery]], rng: random.Random
) -> list[traffic.Delivery]:
    """Every booking's deliveries in a shuffled order with 20 % sent twice, the
    bookings interleaved."""
    queues = []
    for deliveries in per_booking.values():
        copies = [d for d in deliveries if rng.random() < DUPLICATES]
        queue = deliveries + copies
        rng.shuffle(queue)
        queues.append(queue)
    order = [number for number, queue in enumerate(queues) for _ in queue]
    rng.shuffle(order)
    cursors = [iter(queue) for queue in queues]
    return [next(cursors[number]) for number in order]


# --- Faults ----------------------------------------------------------------------------------


@dataclass
class Faults:
    """Faults on a schedule (seconds after the start), each logged with its times."""

    run: traffic.BookingStack
    log: list[tuple[str, float, float]] = field(default_factory=list)  # (what, start, end)
    errors: list[BaseException] = field(default_factory=list)

    def kill_worker(self, number: int) -> None:
        worker = self.run.workers[number]
        worker.kill()
        worker.start().wait_ready()

    def restart_redis(self) -> None:
        self.run.redis.stop()
        time.sleep(2)
        self.run.redis.start().wait_ready()

    def restart_postgres(self) -> None:
        assert self.run.postgres is not None
        self.run.postgres.stop()
        time.sleep(2)
        self.run.postgres.start().wait_ready()

    def play(self, steps: list[tuple[float, str, Callable[[], None]]]) -> None:
        """Each step at its time after now, in this thread: a process started by a
        thread gets its parent-death signal when that thread ends (PR_SET_PDEATHSIG
        follows the thread), so the services are only ever started from here."""
        begin = time.monotonic()
        for at, what, step in steps:
            time.sleep(max(0.0, begin + at - time.monotonic()))
            say(f"fault: {what}")
            started = time.time()
            try:
                step()
            except Exception as exc:  # noqa: BLE001 (reported by the test)
                self.errors.append(exc)
            self.log.append((what, started, time.time()))

    def window(self, what: str) -> tuple[float, float]:
        return next((start, end) for name, start, end in self.log if name == what)


# --- Reading the outcome -----------------------------------------------------------------


def wait_drained(run: traffic.BookingStack, event_ids: set[str], timeout: float) -> dict[str, str]:
    """Each event's inbox status once all are final (or at the timeout)."""
    deadline = time.monotonic() + timeout
    statuses: dict[str, str] = {}
    while True:
        try:
            with run.connect() as conn:
                statuses = dict(rows(conn, INBOX))
        except psycopg.Error:  # the database may be coming back
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
            continue
        if all(statuses.get(event_id) in FINAL for event_id in event_ids):
            return statuses
        if time.monotonic() > deadline:
            return statuses
        time.sleep(1)


def wait_refunds_submitted(run: traffic.BookingStack, expected: int, timeout: float) -> None:
    """Wait until our own refunds (not Stripe's dashboard's) number ``expected`` and
    Stripe has an id for each: the cancellations' refunds are submitted after their
    handler's commit, so Stripe's events about them come a little later."""
    deadline = time.monotonic() + timeout
    while True:
        with run.connect() as conn:
            submitted = rows(
                conn,
                "SELECT count(*), count(stripe_refund_id) FROM payments_refund WHERE NOT external",
            )[0]
        if submitted == (expected, expected) or time.monotonic() > deadline:
            return
        time.sleep(1)


def rows(conn: Any, query: str) -> list[tuple[Any, ...]]:
    return conn.execute(query).fetchall()


@dataclass
class Outcome:
    bookings: dict[str, tuple[str, int, int | None]]  # reference -> (status, id, successor)
    payments: dict[int, list[tuple[str, int, str]]]  # booking id -> (status, amount, charge)
    refunds: dict[int, list[tuple[str, int, str]]]  # booking id -> (status, amount, re_ id)


def read_outcome(run: traffic.BookingStack) -> Outcome:
    with run.connect() as conn:
        bookings = {
            str(reference): (status, pk, successor)
            for pk, reference, status, successor in rows(
                conn, "SELECT id, reference, status, rescheduled_to_id FROM bookings_booking"
            )
        }
        payments: dict[int, list[tuple[str, int, str]]] = defaultdict(list)
        for booking, status, amount, charge in rows(
            conn, "SELECT booking_id, status, amount, coalesce(charge_id, '') FROM payments_payment"
        ):
            payments[booking].append((status, amount, charge))
        refunds: dict[int, list[tuple[str, int, str]]] = defaultdict(list)
        for booking, status, amount, refund in rows(
            conn,
            "SELECT p.booking_id, r.status, r.amount, coalesce(r.stripe_refund_id, '') "
            "FROM payments_refund r JOIN payments_payment p ON p.id = r.payment_id",
        ):
            refunds[booking].append((status, amount, refund))
    return Outcome(bookings, payments, refunds)


def calendly_event_status(run: traffic.BookingStack, uuid: str) -> str:
    sandbox = run.sandbox()
    status, _, body = sandbox.request(
        "GET",
        f"/sandbox/calendly/api/scheduled_events/{uuid}",
        headers={"Authorization": f"Bearer {run.secrets.calendly_api_token}"},
    )
    assert status == 200, body[:300]
    return str(json.loads(body)["resource"]["status"])


# --- The run -----------------------------------------------------------------------------------


def _services_missing() -> str | None:
    if not (stack.POSTGRES_BIN / "initdb").exists():
        return f"needs PostgreSQL's server binaries in {stack.POSTGRES_BIN} (POSTGRES_BIN)"
    if shutil.which("redis-server") is None:
        return "needs redis-server on PATH"
    return None


@pytest.fixture
def chaos_stack(tmp_path: Path) -> Iterator[traffic.BookingStack]:
    missing = _services_missing()
    if missing:
        if os.environ.get("SLOTPAY_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{missing}: services are required in this run", pytrace=False)
        pytest.skip(missing)
    with traffic.booking_stack(
        tmp_path,
        private_postgres=True,
        # Durability across a crash of the machine is not what is tested: a restart
        # of the server is, and it loses nothing committed without fsync.
        postgres_settings={"fsync": "off", "full_page_writes": "off"},
        workers=2,
        concurrency=1,
        # The sandbox's own deliveries go nowhere: this test delivers its events. The
        # sandbox never gives them up, so the Calendly subscription stays enabled.
        SANDBOX_STRIPE_WEBHOOK_URL="http://127.0.0.1:9/nowhere/",
        SANDBOX_WEBHOOK_MAX_ATTEMPTS=100_000,
        # What a killed worker or an emptied Redis lost is taken over within seconds
        # (the defaults are minutes): outbox tasks, a refund's lease.
        OUTBOX_REDELIVER_AFTER_SECONDS=30,
        REFUND_SUBMIT_LEASE_SECONDS=20,
        REFUND_RETRY_INTERVAL_SECONDS=5,
    ) as run:
        yield run


def _send(
    run: traffic.BookingStack, deliveries: list[traffic.Delivery], faults: Faults, steps: Any
) -> list[traffic.Sent]:
    """Send at RATE from a thread while this one plays the faults."""
    sent: list[traffic.Sent] = []
    sender = threading.Thread(
        target=lambda: sent.extend(traffic.send_paced(run.endpoints(), deliveries, rate=RATE)),
        daemon=True,
    )
    sender.start()
    faults.play(steps)
    sender.join()
    assert not faults.errors, f"a fault could not be played: {faults.errors!r}\n{run.logs()}"
    return sent


def test_chaos(chaos_stack: traffic.BookingStack, record_property: Any) -> None:  # noqa: PLR0915 (one story, top down)
    run = chaos_stack
    rng = random.Random(SEED)  # noqa: S311 (the shape of the load, not security)
    began = time.monotonic()
    sandbox = run.sandbox()
    faults = Faults(run)
    subscribe_to_calendly(run)
    say(f"stack up; {BOOKINGS} clients book on Calendly")
    booked = run.book(BOOKINGS)
    created = mixed(bookings_made(run, booked), rng)
    prepared_in = time.monotonic() - began

    # Wave 0: Calendly's invitee.created; a worker dies among the handlers and the
    # Checkout tasks they leave.
    say(f"wave 0: {len(created)} invitee.created deliveries, a worker killed")
    sent = _send(
        run,
        created,
        faults,
        [(0.4 * _seconds(created), "kill worker 0", lambda: faults.kill_worker(0))],
    )
    deliveries = list(created)
    unique = {delivery.event_id for delivery in created}
    statuses = wait_drained(run, unique, DRAIN_TIMEOUT)
    prepared = checkouts_opened(run, booked, DRAIN_TIMEOUT)
    plans = plans_for(prepared, rng)

    say("paying, expiring, refunding at the sandbox")
    act(sandbox, plans)
    say("waiting for the sandbox's disputes")
    open_disputes(run, plans)
    events = sandbox.events()
    stripe = mixed(stripe_deliveries(events), rng)

    # Wave 1: Stripe's events, with Redis and PostgreSQL restarted and a worker killed
    # while they are sent (and so while they are processed behind).
    seconds = _seconds(stripe)
    say(f"wave 1: {len(stripe)} deliveries at {RATE:.0f}/s ({seconds:.0f} s) with faults")
    sent += _send(
        run,
        stripe,
        faults,
        [
            (0.25 * seconds, "restart redis", faults.restart_redis),
            (0.45 * seconds, "kill worker 1", lambda: faults.kill_worker(1)),
            (0.65 * seconds, "restart postgres", faults.restart_postgres),
        ],
    )
    deliveries += stripe
    unique |= {delivery.event_id for delivery in stripe}
    say("waiting for the inbox to drain")
    statuses = wait_drained(run, unique, DRAIN_TIMEOUT)

    # Wave 2: paid invitees cancel (our handlers refund them at Stripe) or reschedule
    # on Calendly; a worker dies among the handlers and the refunds they send.
    changes = mixed(calendly_changes(run, plans, unique), rng)
    say(f"wave 2: {len(changes)} Calendly deliveries, a worker killed")
    sent += _send(
        run,
        changes,
        faults,
        [(0.5 * _seconds(changes), "kill worker 0 again", lambda: faults.kill_worker(0))],
    )
    deliveries += changes
    unique |= {delivery.event_id for delivery in changes}
    statuses = wait_drained(run, unique, DRAIN_TIMEOUT)
    ours = sum(plan.cancel and plan.refunded < traffic.PRICE for plan in plans)
    wait_refunds_submitted(run, ours, DRAIN_TIMEOUT)

    # Wave 3: what Stripe says about the refunds our handlers made.
    seen = {event["id"] for event in events}
    later = [event for event in sandbox.events() if event["id"] not in seen]
    refunded = mixed(stripe_deliveries(later), rng)
    say(f"wave 3: {len(refunded)} deliveries of the refunds our handlers made")
    sent += _send(run, refunded, faults, [])
    deliveries += refunded
    events += later
    unique |= {delivery.event_id for delivery in refunded}

    say("waiting for the inbox to drain")
    statuses = wait_drained(run, unique, DRAIN_TIMEOUT)
    say("reading the outcome")
    waves_in = time.monotonic() - began - prepared_in
    outcome = read_outcome(run)
    verify = run.manage("audit_verify", "--full", timeout=300)

    # --- The checks, counted for the summary (printed passed or failed), then asserted ---
    restart_start, restart_end = faults.window("restart postgres")
    answers: Counter[str] = Counter()
    outside_window = []
    for item in sent:
        for at, status in item.answers:
            answers[str(status) if status else "no connection"] += 1
            if status != 200 and not restart_start <= at <= restart_end + RESTART_GRACE:
                outside_window.append((item.delivery.event_id, status, at - restart_start))
    unacknowledged = [item.delivery.event_id for item in sent if not item.ok]
    not_final = {e: statuses.get(e, "missing") for e in unique if statuses.get(e) not in FINAL}
    dead = [event_id for event_id in unique if statuses.get(event_id) == "dead"]

    wrong, ledger_checked = _bookings_against_their_events(plans, outcome, sandbox)

    kinds = Counter(plan.kind for plan in plans)
    summary = (
        "Chaos run summary\n"
        f"  bookings {len(plans)} made on Calendly: {dict(kinds)}; of the paid "
        f"{sum(p.cancel for p in plans)} canceled and {sum(p.reschedule for p in plans)} "
        f"rescheduled on Calendly; refunds made at Stripe {sum(len(p.refunds) for p in plans)}\n"
        f"  deliveries {len(deliveries)} ({len(deliveries) - len(unique)} duplicates) "
        f"of {len(unique)} events at {RATE:.0f}/s; by type "
        f"{dict(Counter(d.event_type for d in deliveries))}\n"
        f"  answers {dict(answers)}; acknowledged {sum(item.ok for item in sent)}; "
        f"outcomes {dict(Counter(item.outcome for item in sent))}\n"
        f"  faults: {[(what, round(end - start, 1)) for what, start, end in faults.log]}\n"
        f"  5xx outside the PostgreSQL restart window: {len(outside_window)}\n"
        f"  inbox {dict(Counter(statuses.values()))}; never acknowledged "
        f"{len(unacknowledged)}, not processed {len(not_final)}, dead {len(dead)}\n"
        f"  bookings {dict(Counter(status for status, _, _ in outcome.bookings.values()))}; "
        f"not as their events say (wrong state, a payment or refund twice, the ledger) "
        f"{len(wrong)}; ledger compared with Stripe's on {ledger_checked} charges\n"
        f"  audit_verify exit {verify.returncode}: {verify.stdout.strip()[-200:]}\n"
        f"  took: booking {prepared_in:.0f} s, the four waves until drained {waves_in:.0f} s\n"
    )
    # Shown at the end of every run, CI's included, passed or failed (tests/conftest.py's
    # pytest_terminal_summary; under xdist too), and here with -s.
    record_property("summary", summary)
    sys.stdout.write("\n" + summary)

    # --- No event lost ---
    assert not unacknowledged, f"deliveries never acknowledged: {unacknowledged[:10]}"
    assert not not_final, f"events not processed: {list(not_final.items())[:10]}\n{run.logs()}"
    assert not dead, f"dead letters: {dead[:10]}\n{run.logs()}"

    # --- Zero 5xx outside the PostgreSQL restart ---
    assert not outside_window, f"errors outside the restart window: {outside_window[:10]}"

    # --- Every booking where its events put it; nothing applied twice; the ledger ---
    assert not wrong, f"{len(wrong)} bookings not as their events say: {wrong[:10]}"
    # One booking per invitee: the made ones and their reschedules' successors only.
    assert len(outcome.bookings) == len(plans) + sum(plan.reschedule for plan in plans)
    released = [plan for plan in plans if plan.kind == "expire"]
    for plan in released:
        assert calendly_event_status(run, plan.prepared.calendly_event) == "canceled"

    # --- The audit trail is whole ---
    assert verify.returncode == 0, f"audit_verify: {verify.stdout}\n{verify.stderr}"
    assert {delivery.booking for delivery in deliveries if delivery.booking} <= set(
        outcome.bookings
    )


def _bookings_against_their_events(
    plans: list[Plan], outcome: Outcome, sandbox: traffic.Sandbox
) -> tuple[list[Any], int]:
    """Every booking where its events put it, nothing applied twice, our ledger equal
    to Stripe's: what is wrong, and on how many charges the ledger was compared. A
    check that raises is one wrong booking, so the summary still prints."""
    by_id = {pk: (status, successor) for status, pk, successor in outcome.bookings.values()}
    wrong: list[Any] = []
    ledger_checked = 0
    for plan in plans:
        try:
            problem, compared = _booking_against_its_events(plan, outcome, sandbox, by_id)
        except Exception as exc:  # noqa: BLE001 - named in the summary and the assertion
            problem, compared = ("error", plan.kind, repr(exc)), False
        ledger_checked += compared
        if problem:
            wrong.append(problem)
    return wrong, ledger_checked


def _booking_against_its_events(  # noqa: PLR0911 (one return per way to be wrong)
    plan: Plan, outcome: Outcome, sandbox: traffic.Sandbox, by_id: dict[Any, Any]
) -> tuple[Any, bool]:
    """What is wrong with one booking (None if nothing), and whether its ledger was
    compared with Stripe's."""
    if plan.prepared.reference not in outcome.bookings:
        return ("missing", plan.kind, plan.prepared.reference), False
    status, booking, successor = outcome.bookings[plan.prepared.reference]
    want_booking, want_payment = plan.expected()
    if plan.reschedule:
        if status != want_booking or successor is None or outcome.payments[booking]:
            return ("rescheduled", status, successor, outcome.payments[booking]), False
        if by_id[successor][0] != "confirmed":
            return ("successor", by_id[successor]), False
        booking = successor  # the payment moved with the booking
        status = want_booking
    payments = outcome.payments[booking]
    refunds = outcome.refunds[booking]
    if status != want_booking or [p[0] for p in payments] != [want_payment]:
        return (plan.kind, plan.refunds, plan.cancel, status, payments, refunds), False
    ours = int(plan.cancel and plan.refunded < traffic.PRICE)  # the policy's refund
    if len({r[2] for r in refunds}) != len(refunds) or len(refunds) != len(plan.refunds) + ours:
        return ("refund rows", plan.refunds, plan.cancel, refunds), False
    if plan.kind == "expire":
        return None, False
    charge = sandbox.api("GET", f"charges/{payments[0][2]}")
    ours = payments[0][1] - sum(r[1] for r in refunds if r[0] == "succeeded")
    if ours != charge["amount"] - charge["amount_refunded"]:
        return ("ledger", ours, charge["amount"], charge["amount_refunded"]), True
    return None, True


def _seconds(deliveries: list[traffic.Delivery]) -> float:
    return len(deliveries) / RATE
