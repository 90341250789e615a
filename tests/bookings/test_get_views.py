"""A GET never writes or calls a provider: the redirects back from Calendly and from
Checkout show a page that continues by POST (with its script, or its button)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from bookings.models import Booking
from config import outgoing
from payments.models import Payment
from tests.bookings.world import World, world
from tests.sandbox.stripe.helpers import pay

__all__ = ["world"]

pytestmark = pytest.mark.django_db(transaction=True)


def _path(location: str) -> str:
    parts = urlsplit(location)
    return f"{parts.path}?{parts.query}"


def test_calendlys_redirect_is_a_page_that_continues_by_post(world: World) -> None:
    slot = world.book(come_back=False)  # picked on Calendly; no webhook delivered yet
    browser = world.browser(world.client_user)
    before = outgoing.calls("calendly")

    page = browser.get(_path(slot.redirect))

    assert page.status_code == 200
    assert b"data-autosubmit" in page.content
    assert b"/static/js/autosubmit.js" in page.content
    assert b"Continue to payment" in page.content  # without script
    assert outgoing.calls("calendly") == before
    assert not Booking.objects.exists()

    sent = world.come_back(browser, slot.redirect)

    assert sent.status_code == 303
    assert sent["Location"] == Payment.objects.get(booking=slot.booking).checkout_url


def test_back_from_checkout_a_get_asks_stripe_nothing(world: World) -> None:
    slot = world.book()
    paid = world.pay(slot)
    browser = world.browser(world.client_user)
    before = outgoing.calls("stripe")

    page = browser.get(_path(paid["Location"]))

    assert page.status_code == 200
    assert b"data-autosubmit" in page.content
    assert outgoing.calls("stripe") == before
    assert slot.payment.status == "open"  # no webhook yet, and the GET changed nothing

    shown = world.come_back(browser, paid["Location"], follow=True)

    assert b"Booking confirmed" in shown.content
    assert slot.booking.status == "confirmed"
    # The page it lands on asks no more: it refreshes until the webhook (here moot).
    assert b"data-autosubmit" not in shown.content


@pytest.mark.parametrize(
    "start", ["9999-12-31T23:59:59+14:00", "0001-01-01T00:00:00-14:00", "2027-01-01T09:00:00"]
)
def test_an_impossible_start_time_is_a_bad_link_not_an_error(world: World, start) -> None:
    page = world.browser(world.client_user).get(
        "/bookings/scheduled/",
        {"invitee_uuid": "AAAAAAAAAAAAAAAA", "invitee_email": "a@b.c", "event_start_time": start},
    )

    assert page.status_code == 400
    assert b"This link is incomplete" in page.content


def test_back_from_paying_a_booking_moved_before_payment(world: World) -> None:
    """The client moved the session on Calendly, then paid the link they already had:
    Checkout sends them to the first booking's page, which now follows the payment to
    the booking it moved to (it said "Expired (not paid)")."""
    slot = world.book(come_back=False)
    world.deliver("invitee.created")
    moved = world.reschedule(slot)
    world.deliver("invitee.canceled", "invitee.created")
    world.retry_waiting()
    [payment] = Payment.objects.all()

    back = pay(payment.checkout_url)
    shown = world.come_back(world.browser(world.client_user), back["Location"], follow=True)

    new = Booking.objects.for_invitee(moved.uuid).get()
    assert shown.status_code == 200
    assert b"Booking confirmed" in shown.content
    assert str(new.reference) in shown.request["PATH_INFO"]
    assert new.status == "confirmed"


def test_a_hand_made_continue_with_a_huge_email_is_a_bad_link(world: World) -> None:
    slot = world.book(come_back=False)
    fields = dict(parse_qsl(urlsplit(slot.redirect).query))
    fields["invitee_email"] = "a" * 100_000 + "@example.com"

    response = world.browser(world.client_user).post("/bookings/scheduled/", fields)

    assert response.status_code == 400
    assert not Booking.objects.exists()
