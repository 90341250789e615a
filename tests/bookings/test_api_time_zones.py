"""The API's times carry the account's zone, whether the call is signed by a session
or by a token: the same booking reads the same instant with the same offset."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client
from django.utils import timezone

from accounts import tokens
from accounts.models import User
from tests.bookings.factories import make_booking, make_event_type
from tests.bookings.test_isolation import builder_with_member, person

pytestmark = pytest.mark.django_db

START = datetime(2026, 12, 11, 15, 0, tzinfo=UTC)


@pytest.fixture
def angeleno() -> User:
    client = person("la@client.example")
    client.time_zone = "America/Los_Angeles"
    client.save(update_fields=["time_zone"])
    studio, _ = builder_with_member("studio-la")
    make_booking(make_event_type(studio), client, 1, status="confirmed", start_at=START)
    return client


def session_of(user: User) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


def bearer(user: User) -> Client:
    secret = tokens.api_token_create(user=user, name="tz", scopes=["bookings:read"]).secret
    return Client(headers={"Authorization": f"Bearer {secret}"})


@pytest.mark.parametrize("signed_by", [session_of, bearer], ids=["session", "token"])
def test_times_carry_the_accounts_offset(angeleno, signed_by) -> None:
    answer = signed_by(angeleno).get("/api/v1/bookings/")

    assert answer.status_code == 200
    (booking,) = answer.json()["results"]
    assert booking["start_at"] == "2026-12-11T07:00:00-08:00"
    assert booking["time_zone"] == "America/Los_Angeles"
    detail = signed_by(angeleno).get(f"/api/v1/bookings/{booking['id']}/").json()
    assert detail["start_at"] == "2026-12-11T07:00:00-08:00"


def test_an_account_without_a_zone_reads_utc_with_a_token(angeleno) -> None:
    angeleno.time_zone = ""
    angeleno.save(update_fields=["time_zone"])
    (booking,) = bearer(angeleno).get("/api/v1/bookings/").json()["results"]
    assert booking["start_at"] == "2026-12-11T15:00:00Z"


def test_a_tokens_zone_does_not_outlive_its_request(angeleno) -> None:
    """Once answered, the zone is the default again (the middleware deactivates)."""
    bearer(angeleno).get("/api/v1/bookings/")
    assert timezone.get_current_timezone_name() == "UTC"
