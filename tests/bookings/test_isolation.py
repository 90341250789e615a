"""Nobody sees, cancels or learns of a booking that is not theirs: pages and API, 404."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts.models import Builder, BuilderMembership, User
from bookings.models import Booking
from payments.models import Payment
from tests.bookings.factories import make_booking, make_event_type
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def person(email: str) -> User:
    return User.objects.create_user(
        email=email, password=PASSWORD, name=email.split("@", maxsplit=1)[0]
    )


def builder_with_member(slug: str) -> tuple[Builder, User]:
    builder = Builder.objects.create(name=slug.title(), slug=slug)
    member = person(f"{slug}@builder.example")
    BuilderMembership.objects.create(builder=builder, user=member)
    return builder, member


@pytest.fixture
def cast() -> dict:
    studio_a, builder_a = builder_with_member("studio-a")
    studio_b, builder_b = builder_with_member("studio-b")
    client_a, client_b = person("a@client.example"), person("b@client.example")
    type_a, type_b = make_event_type(studio_a), make_event_type(studio_b, price_amount=500)
    booking_a = make_booking(type_a, client_a, 1, status="confirmed")
    booking_b = make_booking(type_b, client_b, 2, status="confirmed")
    for number, booking in ((1, booking_a), (2, booking_b)):
        Payment.objects.create(
            booking=booking,
            checkout_session_id=f"cs_test_{number}",
            amount=booking.price_amount,
            currency=booking.currency,
            status="paid",
        )
    return {
        "client_a": client_a,
        "client_b": client_b,
        "builder_a": builder_a,
        "builder_b": builder_b,
        "booking_a": booking_a,
        "booking_b": booking_b,
    }


def signed_in(user: User) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


def test_a_client_sees_only_their_own_bookings_on_the_pages(cast) -> None:
    browser = signed_in(cast["client_a"])
    mine, theirs = cast["booking_a"], cast["booking_b"]

    listing = browser.get("/bookings/")
    assert str(mine.reference) in listing.content.decode()
    assert str(theirs.reference) not in listing.content.decode()
    assert browser.get(f"/bookings/{mine.reference}/").status_code == 200
    for path in ("", "paid/"):
        assert browser.get(f"/bookings/{theirs.reference}/{path}").status_code == 404
    for path in ("cancel/", "pay/"):
        assert browser.post(f"/bookings/{theirs.reference}/{path}").status_code == 404
    # The same 404 as a booking that does not exist: nothing is learnt.
    unknown = browser.get("/bookings/00000000-0000-4000-8000-000000000000/")
    assert unknown.status_code == 404

    def without_request_id(content: bytes) -> bytes:
        """Each page has its own request id and CSRF mask."""
        return re.sub(rb'<code>[^<]*</code>|name="csrfmiddlewaretoken" value="[^"]*"', b"", content)

    assert without_request_id(
        browser.get(f"/bookings/{theirs.reference}/").content
    ) == without_request_id(unknown.content)
    assert Booking.objects.get(pk=theirs.pk).status == "confirmed"


def test_a_client_sees_only_their_own_bookings_in_the_api(cast) -> None:
    browser = signed_in(cast["client_a"])
    mine, theirs = cast["booking_a"], cast["booking_b"]

    listing = browser.get("/api/v1/bookings/").json()
    assert [item["id"] for item in listing["results"]] == [str(mine.reference)]
    assert browser.get(f"/api/v1/bookings/{mine.reference}/").status_code == 200
    other = browser.get(f"/api/v1/bookings/{theirs.reference}/")
    assert other.status_code == 404
    assert other.json() == {
        "error": {"code": "not_found", "message": "No Booking matches the given query."}
    }
    cancel = browser.post(f"/api/v1/bookings/{theirs.reference}/cancel/")
    assert cancel.status_code == 404
    assert Booking.objects.get(pk=theirs.pk).status == "confirmed"


def test_a_builder_sees_only_their_own_bookings(cast) -> None:
    browser = signed_in(cast["builder_a"])
    mine, theirs = cast["booking_a"], cast["booking_b"]

    page = browser.get("/builder/bookings/").content.decode()
    assert "Studio-A" in page
    assert "€80.00" in page
    assert "¥" not in page
    assert "€5.00" not in page
    listing = browser.get("/api/v1/bookings/").json()
    assert [item["id"] for item in listing["results"]] == [str(mine.reference)]
    assert browser.get(f"/api/v1/bookings/{mine.reference}/").status_code == 200
    assert browser.get(f"/api/v1/bookings/{theirs.reference}/").status_code == 404
    # A builder sees a booking of theirs but is not its client: it cannot cancel it.
    assert browser.post(f"/api/v1/bookings/{mine.reference}/cancel/").status_code == 404
    assert browser.get(f"/bookings/{mine.reference}/").status_code == 404


def test_someone_with_no_builder_has_no_builder_page(cast) -> None:
    assert signed_in(cast["client_a"]).get("/builder/bookings/").status_code == 404


def test_signed_out_visitors_are_sent_to_sign_in_or_refused(cast) -> None:
    visitor = Client()
    page = visitor.get(f"/bookings/{cast['booking_a'].reference}/")
    assert page.status_code == 302
    assert page["Location"].startswith("/accounts/login/")
    api = visitor.get("/api/v1/bookings/")
    assert api.status_code == 401
    assert api["WWW-Authenticate"] == 'Bearer realm="Slotpay API"'
    assert api.json()["error"]["code"] == "not_authenticated"


def test_the_api_is_described_by_its_openapi_schema() -> None:
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {
        "/api/v1/bookings/",
        "/api/v1/bookings/{id}/",
        "/api/v1/bookings/{id}/cancel/",
        "/api/v1/event-types/",
    } <= set(paths)
    assert "cancel_refused" in schema.json()["info"]["description"]
