"""While a bank debit is on its way (Checkout complete, the money not yet arrived), every
page says one thing, "Payment processing": never "Open (Checkout not completed)", and
never a "Pay now" button for a payment already made."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from accounts.models import User
from bookings.models import Booking
from payments.models import Payment
from tests.bookings.world import World, world

__all__ = ["world"]

pytestmark = pytest.mark.django_db(transaction=True)

PROCESSING = "Payment processing"
NOT_COMPLETED = Payment.Status.OPEN.label  # "Open (Checkout not completed)"
SETTLES = "AT611904300234573201"


def debit_on_its_way(world: World) -> tuple[Booking, str]:
    """Booked, paid by SEPA debit, back on our success page: the debit is processing."""
    slot = world.book()
    back = urlsplit(world.pay_by_debit(slot, SETTLES)["Location"])
    success = f"{back.path}?{back.query}"
    world.deliver("checkout.session.completed")
    world.retry_waiting()
    payment = slot.payment
    assert (slot.booking.status, payment.status, payment.session_status) == (
        "pending_payment",
        "open",
        "complete",
    )
    return slot.booking, success


def test_every_page_says_payment_processing_during_a_debit(world: World) -> None:
    booking, success = debit_on_its_way(world)
    client = world.browser(world.client_user)
    builder = world.browser(world.builder_user)

    pages = {
        "success": client.get(success),
        "detail": client.get(f"/bookings/{booking.reference}/"),
        "mine": client.get("/bookings/"),
        "builder": builder.get("/builder/bookings/"),
    }
    for name, page in pages.items():
        text = page.content.decode()
        assert page.status_code == 200, name
        assert PROCESSING in text, name
        assert NOT_COMPLETED not in text, name
        assert "Awaiting payment" not in text, name
    detail = pages["detail"].content.decode()
    assert "Pay now" not in detail
    assert "Nothing has been charged" not in detail


def test_the_back_office_says_processing_too(world: World) -> None:
    debit_on_its_way(world)
    staff = User.objects.create_superuser(email="root@slotpay.example", password="x" * 20)

    page = world.browser(staff).get("/admin/payments/payment/").content.decode()

    assert PROCESSING in page
    assert NOT_COMPLETED not in page.split('id="changelist-filter"')[0]


def test_the_api_says_processing_too(world: World) -> None:
    booking, _ = debit_on_its_way(world)

    for person in (world.client_user, world.builder_user):
        [payment] = (
            world.browser(person).get(f"/api/v1/bookings/{booking.reference}/").json()["payments"]
        )
        assert (payment["status"], payment["status_display"]) == ("open", PROCESSING)


def test_once_the_debit_settles_the_booking_is_confirmed_and_paid(world: World) -> None:
    booking, _ = debit_on_its_way(world)
    world.settle_everything()

    page = world.browser(world.client_user).get(f"/bookings/{booking.reference}/").content
    assert b"Confirmed" in page
    assert b"Paid" in page
    assert PROCESSING.encode() not in page


def test_an_unfinished_checkout_still_offers_to_pay(world: World) -> None:
    slot = world.book()

    page = world.browser(world.client_user).get(f"/bookings/{slot.booking.reference}/")
    text = page.content.decode()
    assert "Awaiting payment" in text
    assert "Pay now" in text
    assert PROCESSING not in text
