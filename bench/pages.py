"""How fast do the lists people page through answer with 100,000 bookings? Prints
figures, never fails.

    .venv/bin/python bench/pages.py [--bookings 100000] [--requests 30]

On a fresh PostgreSQL database (``--database-url``, default ``slotpay_bench_pages``,
dropped and recreated): two builders share the bookings, most of them the first
builder's (a busy builder is the worst case of the builder's list and of the API);
one client made 1,000 of them and the others are spread over 500 clients; every
booking is paid, every tenth refunded (half of those by a staff member, half with no
one named). Then each page is requested ``--requests`` times through the whole Django
stack (the test client: middleware, templates, the admin) by the person it is for,
after one warm-up request, and the median, the 95th percentile and the number of
queries of one request are printed. The issue's target is a p95 under 150 ms with a
number of queries that does not grow with the bookings (tests/pages asserts the
count at two volumes).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import stack  # noqa: E402 (after the path fix above)

BATCH = 5000
TARGET_MS = 150  # the target for each page's 95th percentile
CLIENTS = 500
HEAVY_CLIENT_BOOKINGS = 1000
# The staff member's, for the admin's step-up: made up for each run.
STAFF_PASSWORD = secrets.token_urlsafe(16)


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _load(total: int) -> dict[str, Any]:
    """The cast and ``total`` bookings with their payments and refunds, in batches."""
    from django.db import connection
    from django.utils import timezone

    from accounts.models import Builder, BuilderMembership, User
    from bookings.models import Booking, EventType
    from payments.models import Payment, Refund

    staff = User.objects.create_superuser(email="finance@bench.example", password=STAFF_PASSWORD)
    members, event_types = [], []
    for i in range(2):
        builder = Builder.objects.create(name=f"Studio {i}", slug=f"studio-{i}")
        member = User.objects.create_user(email=f"member{i}@bench.example")
        BuilderMembership.objects.create(builder=builder, user=member, role="owner")
        members.append(member)
        event_types.append(
            EventType.objects.create(
                builder=builder,
                calendly_event_type_uri=f"https://api.calendly.com/event_types/ET{i}",
                scheduling_url=f"https://calendly.com/studio-{i}/consult",
                title="Consultation",
                duration_minutes=60,
                price_amount=8000,
                currency="eur",
            )
        )
    clients = [User.objects.create_user(email=f"client{i}@bench.example") for i in range(CLIENTS)]
    now = timezone.now()
    for first in range(0, total, BATCH):
        numbers = range(first, min(first + BATCH, total))
        bookings = []
        for n in numbers:
            # Nine in ten are the busy builder's; the first 1,000 are one client's.
            event_type = event_types[0 if n % 10 else 1]
            client = clients[0] if n < HEAVY_CLIENT_BOOKINGS else clients[1 + n % (CLIENTS - 1)]
            start = now + timedelta(hours=n % 20000 - 10000)
            uri = f"https://api.calendly.com/scheduled_events/E{n}"
            bookings.append(
                Booking(
                    client=client,
                    builder_id=event_type.builder_id,
                    event_type=event_type,
                    calendly_invitee_uuid=f"I{n}",
                    calendly_invitee_uri=f"{uri}/invitees/I{n}",
                    calendly_event_uri=uri,
                    start_at=start,
                    end_at=start + timedelta(hours=1),
                    invitee_name=f"Invitee {n}",
                    invitee_email=f"invitee{n}@bench.example",
                    answers='[{"question": "Topic?", "answer": "Roofs"}]',
                    price_amount=8000,
                    currency="eur",
                    status=Booking.Status.CONFIRMED,
                )
            )
        bookings = Booking.objects.bulk_create(bookings)
        payments = Payment.objects.bulk_create(
            Payment(
                booking=b,
                checkout_session_id=f"cs_bench_{b.pk}",
                payment_intent_id=f"pi_bench_{b.pk}",
                amount=8000,
                currency="eur",
                status=Payment.Status.PAID,
                paid_at=now,
            )
            for b in bookings
        )
        Refund.objects.bulk_create(
            Refund(
                payment=p,
                amount=1000,
                reason="goodwill",
                status=Refund.Status.SUCCEEDED,
                requested_by=staff if i % 20 == 0 else None,
            )
            for i, p in enumerate(payments)
            if i % 10 == 0
        )
        say(f"  loaded {numbers[-1] + 1:>7} bookings")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {"staff": staff, "member": members[0], "client": clients[0]}


def _time(client: Any, url: str, requests: int) -> tuple[float, float, list[dict[str, str]]]:
    """Median and 95th percentile over ``requests``, and the queries of one more."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)  # warm-up: the session, the per-process caches
    times = []
    for _ in range(requests):
        began = time.perf_counter()
        answer = client.get(url)
        times.append((time.perf_counter() - began) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"{url} answered {answer.status_code}")
    with CaptureQueriesContext(connection) as seen:
        client.get(url)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times), p95, list(seen.captured_queries)


def _where_the_time_goes(p50: float, queries: list[dict[str, str]]) -> list[str]:
    """For a page over its target: its time in SQL, the rest (Python: views,
    decryption, templates), and its slowest queries."""
    in_sql = sum(float(query["time"]) for query in queries) * 1000
    lines = [f"    SQL {in_sql:.1f} ms of {p50:.1f} ms; Python the rest ({p50 - in_sql:.1f} ms)"]
    slowest = sorted(queries, key=lambda query: float(query["time"]), reverse=True)[:3]
    for query in slowest:
        sql = " ".join(query["sql"].split())
        lines.append(f"    {float(query['time']) * 1000:6.1f} ms  {sql[:110]}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bookings", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/slotpay_bench_pages"
    )
    options = parser.parse_args()
    if options.bookings < HEAVY_CLIENT_BOOKINGS:
        raise SystemExit(f"--bookings must be at least {HEAVY_CLIENT_BOOKINGS}")
    stack.recreate_database(options.database_url)
    os.environ["DATABASE_URL"] = options.database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    say(f"loading {options.bookings} bookings")
    began = time.perf_counter()
    cast = _load(options.bookings)
    say(f"loaded in {time.perf_counter() - began:.0f} s")

    def signed_in(user: Any, *, stepped_up: bool = False) -> Client:
        browser = Client()
        browser.force_login(user)
        if stepped_up:
            answer = browser.post(
                "/accounts/step-up/", {"password": STAFF_PASSWORD, "next": "/admin/"}
            )
            if answer.status_code != 302:
                raise SystemExit(f"the step-up answered {answer.status_code}")
        return browser

    client = signed_in(cast["client"])
    member = signed_in(cast["member"])
    staff = signed_in(cast["staff"], stepped_up=True)
    pages = [
        ("My bookings (1,000 of theirs)", client, "/bookings/"),
        ("builder's list", member, "/builder/bookings/"),
        ("API list, as the builder", member, "/api/v1/bookings/"),
        ("API list, as the client", client, "/api/v1/bookings/"),
        ("admin bookings", staff, "/admin/bookings/booking/"),
        ("admin payments", staff, "/admin/payments/payment/"),
        ("admin refunds", staff, "/admin/payments/refund/"),
    ]
    say()
    say(f"{'page':<32}{'p50 ms':>9}{'p95 ms':>9}{'queries':>9}{f'p95/{TARGET_MS}ms':>11}")
    missed = []
    for name, browser, url in pages:
        p50, p95, queries = _time(browser, url, options.requests)
        say(f"{name:<32}{p50:9.1f}{p95:9.1f}{len(queries):9d}{p95 / TARGET_MS:11.2f}")
        if p95 > TARGET_MS:
            missed.append((name, p50, queries))
    for name, p50, queries in missed:
        say()
        say(f"  {name}: p95 over {TARGET_MS} ms; where one request's time goes")
        for line in _where_the_time_goes(p50, queries):
            say(line)


if __name__ == "__main__":
    main()
