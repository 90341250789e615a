"""Staff cancel a booking for the client when the provider is at fault: the Calendly
event is cancelled and everything paid comes back, whatever the policy says.

Through the admin over HTTP; Calendly and Stripe are the sandboxes on the live server.
"""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import AuditEntry
from bookings.models import Booking
from payments.models import Refund
from sandbox.calendly_sandbox.models import Invitee
from tests.bookings.test_cancel_attribution import proxy
from tests.bookings.world import PRICE, World, world
from tests.payments.test_backoffice_refunds import member, shown_messages, signed_in

__all__ = ["proxy", "world"]

pytestmark = pytest.mark.django_db(transaction=True)

CANCELER = ("view_booking", "cancel_for_client")


def _paid(world: World) -> Any:
    # 30 hours ahead: the default policy would give back only half.
    slot = world.book(hours_ahead=30)
    world.pay(slot)
    world.deliver()
    world.retry_waiting()
    assert slot.booking.status == Booking.Status.CONFIRMED
    return slot


def cancel_page(booking: Booking) -> str:
    return f"/admin/bookings/booking/{booking.pk}/cancel-for-client/"


def test_staff_cancel_for_the_client_and_refund_in_full(world: World) -> None:
    slot = _paid(world)
    booking = slot.booking
    staff = member("finance@slotpay.example", *CANCELER)
    browser = signed_in(staff)

    change = browser.get(f"/admin/bookings/booking/{booking.pk}/change/")
    assert cancel_page(booking).encode() in change.content
    page = browser.get(cancel_page(booking))
    assert b"\xe2\x82\xac80.00" in page.content
    answer = browser.post(cancel_page(booking), {"reason": "The builder is ill"}, follow=True)

    assert shown_messages(answer) == [
        f"Booking {booking.pk} is canceled for the client; €80.00 refunded in full."
    ]
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.CANCELED
    assert Invitee.objects.get(pk=slot.invitee.pk).status == Invitee.Status.CANCELED
    world.settle_everything()  # Calendly's invitee.canceled comes, and changes nothing
    assert world.state(slot)["refunds"] == [(PRICE, "succeeded", False)]
    assert world.dead_or_failed() == []
    entry = AuditEntry.objects.get(action="bookings.booking.canceled_for_client")
    assert (entry.actor_id, entry.data["reason"], entry.data["refunded"]) == (
        str(staff.pk),
        "The builder is ill",
        PRICE,
    )
    canceled = AuditEntry.objects.get(action="bookings.booking.canceled")
    assert canceled.actor_id == str(staff.pk)


def test_in_full_even_when_calendlys_webhook_comes_first(world: World, proxy) -> None:
    slot = _paid(world)
    booking = slot.booking
    proxy.then = lambda: world.deliver("invitee.canceled")

    answer = signed_in(member("finance@slotpay.example", *CANCELER)).post(
        cancel_page(booking), {"reason": "No-show by the builder"}
    )

    assert answer.status_code == 302
    refund = Refund.objects.get()
    assert refund.amount == PRICE
    canceled = AuditEntry.objects.get(action="bookings.booking.canceled")
    assert canceled.data["reason"] == "canceled for the client by staff"


def test_it_needs_the_permission_a_step_up_and_a_reason(world: World) -> None:
    slot = _paid(world)
    booking = slot.booking
    support = signed_in(member("support@slotpay.example", "view_booking"))
    not_stepped_up = signed_in(member("f1@slotpay.example", *CANCELER), stepped_up=False)
    stepped_up = signed_in(member("f2@slotpay.example", *CANCELER))

    assert (
        cancel_page(booking).encode()
        not in support.get(f"/admin/bookings/booking/{booking.pk}/change/").content
    )
    assert support.get(cancel_page(booking)).status_code == 403
    assert support.post(cancel_page(booking), {"reason": "x"}).status_code == 403
    redirected = not_stepped_up.post(cancel_page(booking), {"reason": "x"})
    assert redirected["Location"].startswith("/accounts/step-up/")
    no_reason = stepped_up.post(cancel_page(booking), {"reason": "  "})
    assert no_reason.status_code == 200
    assert b"This field is required." in no_reason.content

    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.CONFIRMED
    assert Invitee.objects.get(pk=slot.invitee.pk).status == Invitee.Status.ACTIVE
    assert Refund.objects.count() == 0
