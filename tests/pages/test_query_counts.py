"""The lists people page through answer with a fixed number of queries, however many
bookings there are: each test loads the page at two volumes and holds both to the
same bound, and to the same count (a query per row would grow between them)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from itertools import count
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Builder, BuilderMembership, User
from bookings.models import Booking
from payments.models import Payment, Refund
from tests.bookings.factories import make_booking, make_event_type
from tests.conftest import PASSWORD, step_up

# Fewer than a page at the smaller volume would not show a per-row query as clearly.
SMALL, LARGE = 60, 120
_numbers = count(1)


class Volume:
    """Two builders, each with a member, and two clients who book with both: every
    booking paid, every other one refunded (half by staff, half by nobody named)."""

    def __init__(self) -> None:
        self.staff = User.objects.create_superuser(
            email="finance@slotpay.example", password=PASSWORD
        )
        self.clients = [
            User.objects.create_user(email=f"client{i}@example.com", password=PASSWORD)
            for i in range(2)
        ]
        self.members = []
        self.event_types = []
        for i in range(2):
            builder = Builder.objects.create(name=f"Studio {i}", slug=f"studio-{i}")
            member = User.objects.create_user(email=f"member{i}@example.com", password=PASSWORD)
            BuilderMembership.objects.create(builder=builder, user=member, role="owner")
            self.members.append(member)
            self.event_types.append(make_event_type(builder))

    def add(self, bookings: int) -> None:
        """``bookings`` more, spread over both builders and both clients."""
        for i in range(bookings):
            number = next(_numbers)
            booking = make_booking(
                self.event_types[i % 2],
                self.clients[(i // 2) % 2],
                number,
                start_at=timezone.now() + timedelta(days=number % 30 - 15, hours=number),
                status=Booking.Status.CONFIRMED,
            )
            payment = Payment.objects.create(
                booking=booking,
                checkout_session_id=f"cs_test_{number}",
                payment_intent_id=f"pi_test_{number}",
                amount=booking.price_amount,
                currency=booking.currency,
                status=Payment.Status.PAID,
                paid_at=timezone.now(),
            )
            if number % 2:
                Refund.objects.create(
                    payment=payment,
                    amount=1000,
                    reason="goodwill",
                    status=Refund.Status.SUCCEEDED,
                    requested_by=self.staff if number % 4 == 1 else None,
                )

    def total(self) -> int:
        return Booking.objects.count()


@pytest.fixture
def volume(db: None) -> Volume:
    return Volume()


def _signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as seen:
        answer = client.get(url)
    assert answer.status_code == 200, (url, answer.status_code)
    return len(seen.captured_queries)


def _constant(
    volume: Volume,
    bound: int,
    django_assert_max_num_queries: Callable[..., Any],
    client: Client,
    url: str,
) -> None:
    """At both volumes the page stays within ``bound``, with the same count."""
    counts = []
    for more in (SMALL, LARGE - SMALL):
        volume.add(more)
        client.get(url)  # warm the session and per-process caches: not the page's cost
        with django_assert_max_num_queries(bound):
            counts.append(_queries(client, url))
    assert volume.total() == LARGE
    assert counts[0] == counts[1], counts


def test_my_bookings(volume: Volume, django_assert_max_num_queries: Any) -> None:
    client = _signed_in(volume.clients[0])
    _constant(volume, 9, django_assert_max_num_queries, client, "/bookings/")
    # Half of the 120 are this client's: 50 on the first page, 10 on the second.
    first = client.get("/bookings/")
    assert len(first.context["rows"]) == 50
    assert 'href="?page=2"' in first.content.decode()
    assert len(client.get("/bookings/", {"page": "2"}).context["rows"]) == 10
    for hostile in ("999", "-1", "abc", "\x00", "9" * 5000, "2.5", "\uff11"):
        assert client.get("/bookings/", {"page": hostile}).status_code == 200


def test_my_bookings_reads_only_the_page(volume: Volume) -> None:
    volume.add(LARGE)
    with CaptureQueriesContext(connection) as seen:
        _signed_in(volume.clients[0]).get("/bookings/")
    reads = [q["sql"] for q in seen.captured_queries if 'FROM "bookings_booking"' in q["sql"]]
    assert reads
    assert all("LIMIT 50" in sql or "COUNT(" in sql for sql in reads), reads


def test_builder_bookings(volume: Volume, django_assert_max_num_queries: Any) -> None:
    client = _signed_in(volume.members[0])
    _constant(volume, 11, django_assert_max_num_queries, client, "/builder/bookings/")


@pytest.mark.parametrize("who", ["member", "client"])
def test_api_list(volume: Volume, django_assert_max_num_queries: Any, who: str) -> None:
    user = volume.members[1] if who == "member" else volume.clients[1]
    client = _signed_in(user)
    _constant(volume, 8, django_assert_max_num_queries, client, "/api/v1/bookings/")
    with CaptureQueriesContext(connection) as seen:
        client.get("/api/v1/bookings/")
    reads = [q["sql"] for q in seen.captured_queries if 'FROM "bookings_booking"' in q["sql"]]
    # No de-duplication of whole rows, no join to the memberships.
    assert not any("DISTINCT" in sql or "accounts_buildermembership" in sql for sql in reads)


# Measured: 7, 6 and 4 (the session, the user, the page, its count, and what each list
# joins or filters by); two to spare for the site's own, never one per row.
@pytest.mark.parametrize(
    ("url", "bound"),
    [
        ("/admin/bookings/booking/", 9),
        ("/admin/payments/payment/", 8),
        ("/admin/payments/refund/", 6),
    ],
)
def test_admin_lists(
    volume: Volume, django_assert_max_num_queries: Any, url: str, bound: int
) -> None:
    client = _signed_in(volume.staff)
    step_up(client)
    _constant(volume, bound, django_assert_max_num_queries, client, url)
