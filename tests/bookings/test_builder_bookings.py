"""The builder's bookings page: who booked (name and email, never card data), in the
builder's zone and named, 50 a page; and marking a no-show, for the builder's members
only, confirmed first, audited, the client told.

The cast: Ada owns the studio, Bea is a member of another studio, Clara is a client.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Builder, BuilderMembership, User
from audit.models import AuditEntry
from bookings.models import Booking, EventType
from payments.models import Payment
from tests.bookings.factories import make_booking, make_event_type
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def person(email: str, name: str) -> User:
    return User.objects.create_user(email=email, password=PASSWORD, name=name)


def signed_in(user: User) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


@pytest.fixture
def studio() -> Builder:
    return Builder.objects.create(name="Ada's Studio", slug="ada", time_zone="Asia/Tokyo")


@pytest.fixture
def ada(studio: Builder) -> User:
    member = person("ada@builder.example", "Ada Builder")
    BuilderMembership.objects.create(builder=studio, user=member, role="owner")
    return member


@pytest.fixture
def bea() -> User:
    other = Builder.objects.create(name="Bea's Bakery", slug="bea")
    member = person("bea@bakery.example", "Bea Baker")
    BuilderMembership.objects.create(builder=other, user=member, role="owner")
    return member


@pytest.fixture
def clara() -> User:
    return person("clara@client.example", "Clara Client")


@pytest.fixture
def event_type(studio: Builder) -> EventType:
    return make_event_type(studio)


def paid(booking: Booking) -> Booking:
    Payment.objects.create(
        booking=booking,
        checkout_session_id=f"cs_test_{booking.pk}",
        amount=booking.price_amount,
        currency=booking.currency,
        status="paid",
        card_brand="visa",
        card_last4="4242",
        receipt_url="https://pay.stripe.com/receipts/r_1",
    )
    return booking


def test_members_see_who_booked_in_their_zone_and_no_card(ada, bea, clara, event_type) -> None:
    start = datetime(2027, 1, 15, 9, tzinfo=ZoneInfo("America/New_York"))
    paid(make_booking(event_type, clara, start_at=start, status="confirmed"))

    page = signed_in(ada).get("/builder/bookings/").content.decode()
    assert "Clara Client" in page
    assert "clara@client.example" in page
    assert "15 Jan 2027, 23:00 (Asia/Tokyo)" in page
    for card in ("4242", "Visa", "receipts"):
        assert card not in page

    elsewhere = signed_in(bea).get("/builder/bookings/").content.decode()
    assert "Clara Client" not in elsewhere
    assert "clara@client.example" not in elsewhere
    # A client (no builder) has no builder page at all.
    assert signed_in(clara).get("/builder/bookings/").status_code == 404


def test_fifty_a_page_and_only_the_page_is_read(ada, clara, event_type) -> None:
    soon = timezone.now() + timedelta(days=1)
    for number in range(1, 121):
        make_booking(
            event_type,
            clara,
            number,
            start_at=soon + timedelta(hours=number),
            invitee_name=f"Invitee {number:03d}",
        )
    browser = signed_in(ada)

    with CaptureQueriesContext(connection) as queries:
        first = browser.get("/builder/bookings/").content.decode()
    assert len(re.findall(r"Invitee \d{3}", first)) == 50
    assert "Invitee 120" in first
    assert "Invitee 071" in first
    assert "Invitee 070" not in first
    assert "Page 1 of 3" in first
    # The bookings are read 50 at a time (plus the count), never all 120.
    reads = [q["sql"] for q in queries if 'FROM "bookings_booking"' in q["sql"]]
    assert any("LIMIT 50" in sql for sql in reads)
    assert not any("LIMIT" not in sql and "COUNT(" not in sql for sql in reads)
    assert not any('"answers"' in sql for sql in reads)  # never decrypted for the list

    last = browser.get("/builder/bookings/?page=3").content.decode()
    assert len(re.findall(r"Invitee \d{3}", last)) == 20
    for hostile in ("999", "-1", "abc", "\x00", "9" * 5000):
        assert browser.get("/builder/bookings/", {"page": hostile}).status_code == 200


def test_a_no_show_after_the_start_is_confirmed_then_marked(ada, clara, event_type) -> None:
    ahead = paid(make_booking(event_type, clara, 1, status="confirmed"))
    begun = paid(
        make_booking(
            event_type,
            clara,
            2,
            start_at=timezone.now() - timedelta(minutes=20),
            status="confirmed",
        )
    )
    browser = signed_in(ada)

    listed = browser.get("/builder/bookings/").content.decode()
    assert f"/builder/bookings/{ahead.reference}/no-show/" not in listed
    assert f"/builder/bookings/{ahead.reference}/cancel/" in listed
    assert "Cancel (full refund)" in listed
    assert f"/builder/bookings/{begun.reference}/no-show/" in listed
    assert f"/builder/bookings/{begun.reference}/cancel/" not in listed
    refused = browser.post(f"/builder/bookings/{ahead.reference}/no-show/", follow=True)
    assert "This session has not started yet." in refused.content.decode()
    # Nor is a confirmation page offered for it, nor a cancel for the one that began.
    offered = browser.get(f"/builder/bookings/{ahead.reference}/no-show/", follow=True)
    assert "once a confirmed session has started" in offered.content.decode()
    assert "Mark as a no-show" not in offered.content.decode()
    late = browser.get(f"/builder/bookings/{begun.reference}/cancel/", follow=True)
    assert "has not started can be canceled" in late.content.decode()
    assert Booking.objects.get(pk=ahead.pk).status == "confirmed"

    url = f"/builder/bookings/{begun.reference}/no-show/"
    confirm = browser.get(url)
    assert confirm.status_code == 200
    assert "Mark as a no-show" in confirm.content.decode()
    assert Booking.objects.get(pk=begun.pk).status == "confirmed"  # a GET changes nothing
    done = browser.post(url)
    assert (done.status_code, done["Location"]) == (302, "/builder/bookings/")
    again = browser.post(url)
    assert again.status_code == 302

    begun.refresh_from_db()
    assert begun.status == "no_show"
    [entry] = AuditEntry.objects.filter(action="bookings.booking.no_show")
    assert (entry.actor_id, entry.data["reason"]) == (str(ada.pk), "marked by the builder")
    told = [m for m in mail.outbox if "missed" in m.subject]
    assert len(told) == 1
    assert told[0].to == ["clara@client.example"]
    assert "no refund" in told[0].body


def test_a_completed_session_can_still_be_marked_a_no_show(ada, clara, event_type) -> None:
    booking = make_booking(
        event_type, clara, start_at=timezone.now() - timedelta(days=2), status="completed"
    )
    answer = signed_in(ada).post(f"/builder/bookings/{booking.reference}/no-show/")
    assert answer.status_code == 302
    assert Booking.objects.get(pk=booking.pk).status == "no_show"


def test_only_the_builders_members_reach_the_actions(ada, bea, clara, event_type) -> None:
    booking = make_booking(
        event_type, clara, start_at=timezone.now() - timedelta(hours=1), status="confirmed"
    )
    for outsider in (bea, clara):
        browser = signed_in(outsider)
        for action in ("no-show", "cancel"):
            url = f"/builder/bookings/{booking.reference}/{action}/"
            assert browser.get(url).status_code == 404
            assert browser.post(url).status_code == 404
    assert Booking.objects.get(pk=booking.pk).status == "confirmed"
    assert not AuditEntry.objects.filter(action="bookings.booking.no_show").exists()

    signed_out = Client().post(f"/builder/bookings/{booking.reference}/no-show/")
    assert signed_out.status_code == 302
    assert signed_out["Location"].startswith("/accounts/login/")


def test_the_actions_need_the_csrf_token(ada, clara, event_type) -> None:
    booking = make_booking(
        event_type, clara, start_at=timezone.now() - timedelta(hours=1), status="confirmed"
    )
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(ada)
    answer = browser.post(f"/builder/bookings/{booking.reference}/no-show/")
    assert answer.status_code == 403
    assert Booking.objects.get(pk=booking.pk).status == "confirmed"
