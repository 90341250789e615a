"""The four cases the project's seed names, under those names, end to end.

Each drives the real pages, API and providers' sandboxes; the behaviours are tested
in detail in the apps' own folders, these say in one place that they hold.
"""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import connection
from django.test import Client

from bookings import checkout
from bookings.models import Booking, PolicyConsent
from payments.models import Payment
from tests.bookings.test_isolation import cast
from tests.bookings.world import World, world

__all__ = ["cast", "world"]

CARD = "4242 4242 4242 4242"
# Our own apps: the sandbox's tables are Stripe's and Calendly's side of the wire.
OUR_APPS = ("accounts", "audit", "bookings", "core", "payments", "webhooks")


def _signed_in(user) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


@pytest.mark.django_db
def test_proper_isolation_between_builder_accounts(cast) -> None:
    """A builder sees and reaches only its own bookings, on its page and in the API;
    another builder's booking is the same 404 as one that does not exist."""
    for me, mine, theirs in (
        (cast["builder_a"], cast["booking_a"], cast["booking_b"]),
        (cast["builder_b"], cast["booking_b"], cast["booking_a"]),
    ):
        browser = _signed_in(me)
        page = browser.get("/builder/bookings/").content.decode()
        listing = browser.get("/api/v1/bookings/").json()

        assert [item["id"] for item in listing["results"]] == [str(mine.reference)]
        assert mine.builder.name in page
        assert theirs.builder.name not in page
        assert browser.get(f"/api/v1/bookings/{mine.reference}/").status_code == 200
        assert browser.get(f"/api/v1/bookings/{theirs.reference}/").status_code == 404
        assert browser.post(f"/api/v1/bookings/{theirs.reference}/cancel/").status_code == 404
    assert set(Booking.objects.values_list("status", flat=True)) == {"confirmed"}


@pytest.mark.django_db
def test_proper_isolation_between_client_bookings(cast) -> None:
    """A client sees, pays and cancels only their own bookings; another client's are a
    404 everywhere and stay as they were."""
    for me, mine, theirs in (
        (cast["client_a"], cast["booking_a"], cast["booking_b"]),
        (cast["client_b"], cast["booking_b"], cast["booking_a"]),
    ):
        browser = _signed_in(me)
        page = browser.get("/bookings/").content.decode()
        listing = browser.get("/api/v1/bookings/").json()

        assert str(mine.reference) in page
        assert str(theirs.reference) not in page
        assert [item["id"] for item in listing["results"]] == [str(mine.reference)]
        for path in ("", "paid/"):
            assert browser.get(f"/bookings/{theirs.reference}/{path}").status_code == 404
        for path in ("cancel/", "pay/"):
            assert browser.post(f"/bookings/{theirs.reference}/{path}").status_code == 404
        assert browser.get(f"/api/v1/bookings/{theirs.reference}/").status_code == 404
        assert browser.post(f"/api/v1/bookings/{theirs.reference}/cancel/").status_code == 404
    assert set(Booking.objects.values_list("status", flat=True)) == {"confirmed"}


def _text_columns() -> list[tuple[str, str]]:
    found = []
    for model in apps.get_models():
        if model._meta.app_label not in OUR_APPS or not model._meta.managed:
            continue
        for field in model._meta.concrete_fields:
            if field.get_internal_type() in ("CharField", "TextField", "JSONField", "URLField"):
                found.append((model._meta.db_table, field.column))
    return found


@pytest.mark.django_db(transaction=True)
def test_card_data_handling(world: World, caplog: pytest.LogCaptureFixture) -> None:
    """The card is typed on Stripe's page, never ours: after paying with a card, no
    table of ours and no log line holds its number; we keep the brand and last four
    digits for the client only, and Stripe learns only our booking's reference."""
    caplog.set_level("DEBUG")
    slot = world.book()
    world.pay(slot, CARD)
    world.deliver()
    world.retry_waiting()

    payment = Payment.objects.get(booking=slot.booking)
    assert (payment.status, payment.card_brand, payment.card_last4) == ("paid", "visa", "4242")
    digits = CARD.replace(" ", "")
    with connection.cursor() as cursor:
        for table, column in _text_columns():
            cursor.execute(
                f'SELECT COUNT(*) FROM "{table}" WHERE CAST("{column}" AS TEXT) LIKE %s '  # noqa: S608 (our own table names)
                f'OR CAST("{column}" AS TEXT) LIKE %s',
                [f"%{digits}%", f"%{CARD}%"],
            )
            assert cursor.fetchone()[0] == 0, f"{table}.{column} holds the card number"
    assert digits not in caplog.text
    assert CARD not in caplog.text
    assert all(set(meta) <= {"booking", "refund"} for meta in world.stripe_metadata())
    # The client sees their card's last four; the builder never does.
    mine = _signed_in(world.client_user).get(f"/api/v1/bookings/{slot.booking.reference}/")
    theirs = _signed_in(world.builder_user).get(f"/api/v1/bookings/{slot.booking.reference}/")
    assert mine.json()["payments"][0]["card_last4"] == "4242"
    assert theirs.json()["payments"][0]["card_last4"] is None
    assert not {f.name for f in Payment._meta.fields} & {"card_number", "cvc", "expiry"}


@pytest.mark.django_db(transaction=True)
def test_explicit_consent_verification(world: World) -> None:
    """Nothing is booked or charged without the client ticking the policy box: the box
    is never pre-ticked, no tick is refused, the consent recorded is the policy as
    shown (version and tiers), and Checkout refuses a booking that has none."""
    browser = _signed_in(world.client_user)
    page = browser.get(f"/sessions/{world.event_type.pk}/").content.decode()
    assert 'name="consent"' in page
    assert "checked" not in page

    refused = browser.post(f"/sessions/{world.event_type.pk}/", {"policy_version": str(1)})
    assert refused.status_code == 400
    assert not PolicyConsent.objects.exists()

    slot = world.book()  # ticks the box
    consent = PolicyConsent.objects.get()
    booking = slot.booking
    assert (consent.user, consent.booking, consent.policy_version) == (
        world.client_user,
        booking,
        world.event_type.refund_policy_version,
    )
    assert consent.policy == world.event_type.refund_policy

    # A booking whose consent is gone is never sent to Checkout.
    PolicyConsent.objects.all().delete()
    Payment.objects.filter(booking=booking).delete()
    with pytest.raises(checkout.CheckoutRefused, match="agree to the refund policy"):
        checkout.checkout_start(booking=booking)
