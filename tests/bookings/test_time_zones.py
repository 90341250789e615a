"""Every time shown to a person is in that person's zone and names it.

The zone is the person's own setting; otherwise, for a client, the zone they picked on
Calendly; for a builder's member on the builder's pages, the builder's; elsewhere
(the back-office) UTC. The server's zone (UTC) never leaks into a page unnamed.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.test import Client

from accounts.models import Builder, BuilderMembership, User
from bookings import notify
from bookings.models import Booking, EventType
from payments.models import Payment
from tests.bookings.factories import make_booking, make_event_type
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

WINTER_DAY = (2027, 1, 15)  # a Friday, standard time in Berlin and New York
ZONES = ["Europe/Berlin", "Asia/Tokyo", "America/New_York"]


def person(email: str, *, time_zone: str = "", **fields: object) -> User:
    return User.objects.create_user(
        email=email, password=PASSWORD, name="Clara Client", time_zone=time_zone, **fields
    )


def signed_in(user: User) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


@pytest.fixture
def studio() -> Builder:
    return Builder.objects.create(name="Ada's Studio", slug="ada", time_zone="Asia/Tokyo")


@pytest.fixture
def event_type(studio: Builder) -> EventType:
    return make_event_type(studio)


def booked(event_type: EventType, client: User | None, zone: str, *when: int) -> Booking:
    """A paid, confirmed booking the client made for ``when`` (year, month, day, hour)
    in ``zone`` on Calendly."""
    number = Booking.objects.count() + 1
    booking = make_booking(
        event_type,
        client,
        number,
        start_at=datetime(*when, tzinfo=ZoneInfo(zone)),
        invitee_time_zone=zone,
        status="confirmed",
    )
    Payment.objects.create(
        booking=booking,
        checkout_session_id=f"cs_test_{number}",
        amount=booking.price_amount,
        currency=booking.currency,
        status="paid",
    )
    return booking


@pytest.mark.parametrize("zone", ZONES)
def test_a_clients_pages_show_nine_oclock_in_the_zone_they_booked_in(event_type, zone) -> None:
    client = person("clara@client.example")
    booking = booked(event_type, client, zone, *WINTER_DAY, 9)
    browser = signed_in(client)

    for path in (
        "/bookings/",
        f"/bookings/{booking.reference}/",
        f"/bookings/{booking.reference}/paid/",
    ):
        page = browser.get(path).content.decode()
        assert f"Friday 15 January 2027, 09:00 ({zone})" in page, path


def test_a_clients_own_zone_setting_wins_over_the_bookings(event_type) -> None:
    client = person("clara@client.example", time_zone="Asia/Tokyo")
    booking = booked(event_type, client, "Europe/Berlin", *WINTER_DAY, 9)

    page = signed_in(client).get(f"/bookings/{booking.reference}/").content.decode()
    assert "Friday 15 January 2027, 17:00 (Asia/Tokyo)" in page
    assert "(Asia/Tokyo): 100% back" in page  # the refund deadlines too


def test_across_a_dst_change_the_time_and_the_refund_deadlines_are_local(staff) -> None:
    """Booked in winter time (20 March) for 1 April 09:00 in Berlin, summer time: the
    deadlines count hours back from the start, so the one a week before falls in
    winter time (08:00) and the ones after the change at 09:00."""
    studio = Builder.objects.create(name="Ada's Studio", slug="ada")
    event_type = make_event_type(studio)
    event_type.set_refund_policy(
        [
            {"min_notice_hours": 168, "percent": 100},
            {"min_notice_hours": 48, "percent": 50},
            {"min_notice_hours": 0, "percent": 0},
        ],
        actor=staff,
    )
    client = person("clara@client.example")
    booking = booked(event_type, client, "Europe/Berlin", 2027, 4, 1, 9)
    Booking.objects.filter(pk=booking.pk).update(
        created_at=datetime(2027, 3, 20, 12, tzinfo=ZoneInfo("Europe/Berlin"))
    )

    page = signed_in(client).get(f"/bookings/{booking.reference}/").content.decode()
    assert "Thursday 1 April 2027, 09:00 (Europe/Berlin)" in page
    assert "Cancel by 25 March 2027, 08:00 (Europe/Berlin): 100% back" in page
    assert "Cancel by 30 March 2027, 09:00 (Europe/Berlin): 50% back" in page
    assert "07:00" not in page  # the start in UTC


def test_the_builders_table_is_in_the_builders_zone_and_names_it(event_type, studio) -> None:
    member = person("ada@builder.example")
    BuilderMembership.objects.create(builder=studio, user=member)
    booked(event_type, person("c@client.example"), "America/New_York", *WINTER_DAY, 9)

    page = signed_in(member).get("/builder/bookings/").content.decode()
    assert "15 Jan 2027, 23:00 (Asia/Tokyo)" in page

    member.time_zone = "America/New_York"
    member.save(update_fields=["time_zone"])
    page = signed_in(member).get("/builder/bookings/").content.decode()
    assert "15 Jan 2027, 09:00 (America/New_York)" in page


@pytest.mark.parametrize("zone", ZONES)
def test_emails_to_the_client_say_the_time_in_their_zone(
    event_type, zone, django_capture_on_commit_callbacks
) -> None:
    booking = booked(event_type, person("clara@client.example"), zone, *WINTER_DAY, 9)

    with django_capture_on_commit_callbacks(execute=True):
        notify.payment_link(booking, "https://checkout.example/pay")
        notify.confirmed(booking, "https://receipt.example/r")
        notify.canceled(booking, 8000, "eur")

    assert len(mail.outbox) == 3
    for email in mail.outbox:
        assert f"Friday 15 January 2027, 09:00 ({zone})" in email.body, email.subject


def test_an_email_follows_the_clients_own_zone_setting(
    event_type, django_capture_on_commit_callbacks
) -> None:
    client = person("clara@client.example", time_zone="America/New_York")
    booking = booked(event_type, client, "Asia/Tokyo", *WINTER_DAY, 9)

    with django_capture_on_commit_callbacks(execute=True):
        notify.confirmed(booking, "")

    [email] = mail.outbox
    assert "Thursday 14 January 2027, 19:00 (America/New_York)" in email.body


def staff_browser(time_zone: str) -> Client:
    return signed_in(
        User.objects.create_superuser(
            email="staff@slotpay.example", password=PASSWORD, time_zone=time_zone
        )
    )


def test_the_admin_shows_times_in_the_staff_members_zone_and_says_which(event_type) -> None:
    booked(event_type, None, "Europe/Berlin", *WINTER_DAY, 9)

    page = staff_browser("America/New_York").get("/admin/bookings/booking/").content.decode()
    assert "Times in America/New_York" in page
    assert "Jan. 15, 2027, 3 a.m." in page  # 09:00 in Berlin


def test_the_admin_is_in_utc_for_staff_without_a_zone_and_says_so(event_type) -> None:
    booked(event_type, None, "Europe/Berlin", *WINTER_DAY, 9)

    page = staff_browser("").get("/admin/bookings/booking/").content.decode()
    assert "Times in UTC" in page
    assert "Jan. 15, 2027, 8 a.m." in page


def test_the_api_gives_offsets_and_names_the_zone_to_show_them_in(event_type, studio) -> None:
    client = person("clara@client.example")
    booking = booked(event_type, client, "Europe/Berlin", *WINTER_DAY, 9)
    member = person("ada@builder.example")
    BuilderMembership.objects.create(builder=studio, user=member)
    path = f"/api/v1/bookings/{booking.reference}/"

    as_client = signed_in(client).get(path).json()
    assert (as_client["start_at"], as_client["time_zone"]) == (
        "2027-01-15T08:00:00Z",
        "Europe/Berlin",
    )
    assert as_client["invitee_time_zone"] == "Europe/Berlin"  # as before
    as_builder = signed_in(member).get(path).json()
    assert (as_builder["start_at"], as_builder["time_zone"]) == (
        "2027-01-15T08:00:00Z",
        "Asia/Tokyo",
    )

    client.time_zone = "America/New_York"
    client.save(update_fields=["time_zone"])
    own = signed_in(client).get(path).json()
    assert (own["start_at"], own["time_zone"]) == ("2027-01-15T03:00:00-05:00", "America/New_York")


def test_the_api_schema_says_which_zone_times_are_in() -> None:
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    booking = schema["components"]["schemas"]["Booking"]["properties"]

    for name in ("start_at", "end_at", "created_at"):
        assert "UTC offset of your account's time zone" in booking[name]["description"]
    assert "IANA time zone" in booking["time_zone"]["description"]
    assert (
        "UTC offset"
        in schema["components"]["schemas"]["Payment"]["properties"]["paid_at"]["description"]
    )
