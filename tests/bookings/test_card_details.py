"""Which card paid is the client's business: builders never receive a client's card
brand, last four digits or receipt link, in the API or on their pages
(docs/data-inventory.md); the client still sees their own."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import Builder, BuilderMembership, User
from bookings.models import Booking
from payments.models import Payment
from tests.bookings.factories import make_booking, make_event_type
from tests.bookings.world import World, world
from tests.conftest import PASSWORD

__all__ = ["world"]

RECEIPT = "https://pay.stripe.com/receipts/acct_1/ch_1/rcpt_secret"
CARD_FIELDS = ("card_brand", "card_last4", "receipt_url")


@pytest.fixture
def paid_booking(db: None) -> Booking:
    studio = Builder.objects.create(name="Ada's Studio", slug="ada")
    member = User.objects.create_user(email="ada@builder.example", password=PASSWORD, name="Ada")
    BuilderMembership.objects.create(builder=studio, user=member)
    client = User.objects.create_user(email="clara@client.example", password=PASSWORD, name="C")
    booking = make_booking(make_event_type(studio), client, status="confirmed")
    Payment.objects.create(
        booking=booking,
        checkout_session_id="cs_test_card",
        amount=booking.price_amount,
        currency=booking.currency,
        status="paid",
        card_brand="visa",
        card_last4="4242",
        receipt_url=RECEIPT,
    )
    return booking


def signed_in(user: User) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


def member_of(booking: Booking) -> User:
    return booking.builder.memberships.get().user


def test_the_client_sees_their_card_and_receipt_in_the_api(paid_booking) -> None:
    browser = signed_in(paid_booking.client)

    listed = browser.get("/api/v1/bookings/").json()["results"][0]["payments"][0]
    one = browser.get(f"/api/v1/bookings/{paid_booking.reference}/").json()["payments"][0]
    for payment in (listed, one):
        assert [payment[f] for f in CARD_FIELDS] == ["visa", "4242", RECEIPT]


def test_the_builder_gets_no_card_or_receipt_from_the_api(paid_booking) -> None:
    browser = signed_in(member_of(paid_booking))

    listing = browser.get("/api/v1/bookings/")
    one = browser.get(f"/api/v1/bookings/{paid_booking.reference}/")
    for response in (listing, one):
        assert response.status_code == 200
        body = response.content.decode()
        assert "4242" not in body
        assert "visa" not in body
        assert "receipts" not in body
    payment = one.json()["payments"][0]
    # The keys stay (the schema is one for both roles), empty for the builder.
    assert [payment[f] for f in CARD_FIELDS] == [None, None, None]
    assert (payment["status"], payment["display_amount"]) == ("paid", "€80.00")


def test_the_builders_page_shows_no_card_or_receipt(paid_booking) -> None:
    page = signed_in(member_of(paid_booking)).get("/builder/bookings/").content.decode()

    assert "€80.00 · Paid" in page
    assert "4242" not in page
    assert "Visa" not in page
    assert "receipt" not in page.lower()


def test_the_clients_page_shows_their_card_and_receipt(paid_booking) -> None:
    page = signed_in(paid_booking.client).get(f"/bookings/{paid_booking.reference}/")

    assert "Visa •••• 4242" in page.content.decode()
    assert RECEIPT in page.content.decode()


def test_the_schema_says_the_card_fields_are_the_clients_only(db: None) -> None:
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    fields = schema["components"]["schemas"]["Payment"]["properties"]

    for name in CARD_FIELDS:
        assert fields[name]["nullable"] is True
        assert "builder" in fields[name]["description"]


@pytest.mark.django_db(transaction=True)
def test_the_cancel_answer_still_shows_the_client_their_card(world: World) -> None:
    slot = world.book()
    world.pay(slot)
    world.deliver()
    world.retry_waiting()

    done = world.browser(world.client_user).post(
        f"/api/v1/bookings/{slot.booking.reference}/cancel/"
    )

    assert done.status_code == 200, done.content
    [payment] = done.json()["booking"]["payments"]
    assert (payment["card_brand"], payment["card_last4"]) == ("visa", "4242")
    assert payment["receipt_url"].startswith(world.site.url)
