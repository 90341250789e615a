"""One rule for the zone a person reads times in, and the middleware that activates it."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import Client
from django.utils import timezone

from accounts.models import Builder, User
from bookings.models import Booking
from core.timezones import UTC, viewer_zone, zone_named
from tests.conftest import PASSWORD

BERLIN, TOKYO, NEW_YORK = (ZoneInfo(n) for n in ("Europe/Berlin", "Asia/Tokyo", "America/New_York"))


def test_a_persons_own_zone_wins_over_the_bookings_and_the_builders() -> None:
    user = User(time_zone="Asia/Tokyo")
    booking = Booking(invitee_time_zone="Europe/Berlin")
    builder = Builder(time_zone="America/New_York")

    assert viewer_zone(user, booking=booking, builder=builder) == TOKYO
    assert viewer_zone(user) == TOKYO


def test_without_one_the_booking_then_the_builder_then_utc() -> None:
    user = User(time_zone="")
    booking = Booking(invitee_time_zone="Europe/Berlin")
    builder = Builder(time_zone="America/New_York")

    assert viewer_zone(user, booking=booking) == BERLIN
    assert viewer_zone(user, builder=builder) == NEW_YORK
    assert viewer_zone(user) == UTC
    # An email to a booking with no account behind it: the zone picked on Calendly.
    assert viewer_zone(None, booking=booking) == BERLIN


def test_a_signed_out_visitor_reads_utc() -> None:
    assert viewer_zone(AnonymousUser()) == UTC
    assert viewer_zone(AnonymousUser(), builder=Builder(time_zone="Asia/Tokyo")) == TOKYO


@pytest.mark.parametrize("name", ["", None, "Mars/Olympus_Mons", "../../etc/passwd"])
def test_a_blank_or_unknown_zone_is_utc(name) -> None:
    assert zone_named(name) == UTC
    assert viewer_zone(None, booking=Booking(invitee_time_zone=name or "")) == UTC


@pytest.mark.django_db
def test_the_middleware_activates_the_users_zone_for_one_request_only() -> None:
    staff = User.objects.create_superuser(
        email="staff@slotpay.example", password=PASSWORD, time_zone="Asia/Tokyo"
    )
    browser = Client()
    browser.force_login(staff)

    assert "Times in Asia/Tokyo" in browser.get("/admin/").content.decode()
    # Nothing run after the request in the same thread (an eager task, the next
    # request) inherits it.
    assert timezone.get_current_timezone_name() == "UTC"
    assert "Times in UTC" in Client().get("/admin/login/").content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("zone", "shown"), [("", "2:15 a.m. UTC"), ("Asia/Tokyo", "11:15 a.m. JST")]
)
def test_every_admin_time_names_its_zone(zone: str, shown: str) -> None:
    """Django's own date displays in the back-office (lists, read-only fields) carry
    the zone after the time, not only the page's header."""
    from datetime import datetime

    from audit.models import SecurityEventCount

    at = datetime(2026, 11, 30, 2, 15, tzinfo=UTC)
    SecurityEventCount.objects.create(
        action="tests.event", hour=at.replace(minute=0), count=1, last_seen_at=at
    )
    staff = User.objects.create_superuser(
        email="root@slotpay.example", password=PASSWORD, time_zone=zone
    )
    browser = Client()
    browser.force_login(staff)

    listing = browser.get("/admin/audit/securityeventcount/").content.decode()

    assert f"Nov. 30, 2026, {shown}" in listing
