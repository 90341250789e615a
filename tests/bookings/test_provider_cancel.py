"""The builder cancels a session from Slotpay, as the provider: the Calendly event is
cancelled, and the client gets everything back whatever the policy says (as when the
builder cancels on Calendly), at once, audited with the builder's member as actor,
and emailed. Driven through our pages and both sandboxes over HTTP.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from audit.models import AuditEntry
from bookings import services
from bookings.models import Booking
from payments import stripe_gateway
from payments.models import RefundApproval
from sandbox.calendly_sandbox.models import ScheduledEvent
from tests.bookings.factories import make_booking
from tests.bookings.world import PRICE, Slot, World, world

__all__ = ["world"]

pytestmark = pytest.mark.django_db(transaction=True)


def settle(world: World) -> None:
    world.deliver()
    world.retry_waiting()
    world.redeliver_everything()
    world.retry_waiting()
    assert world.dead_or_failed() == []


def paid_slot(world: World, *, hours_ahead: float) -> Slot:
    slot = world.book(hours_ahead=hours_ahead)
    assert world.pay(slot).status_code == 303
    settle(world)
    assert slot.booking.status == "confirmed"
    return slot


def event_of(slot: Slot) -> ScheduledEvent:
    return ScheduledEvent.objects.get(pk=slot.invitee.scheduled_event_id)


def test_inside_the_no_refund_window_the_builder_still_refunds_everything(world: World):
    # 10 hours ahead: the client cancelling now would get nothing back.
    slot = paid_slot(world, hours_ahead=10)
    booking = slot.booking
    builder = world.browser(world.builder_user)
    url = f"/builder/bookings/{booking.reference}/cancel/"
    mail.outbox.clear()

    confirm = builder.get(url).content.decode()
    assert "€80.00" in confirm
    assert "Cancel the session and refund €80.00" in confirm
    assert Booking.objects.get(pk=booking.pk).status == "confirmed"  # a GET changes nothing

    done = builder.post(url, follow=True)
    assert "Canceled; the client has been told. €80.00 is refunded." in done.content.decode()
    settle(world)  # Calendly's invitee.canceled and Stripe's refund events come back

    assert world.state(slot) == {
        "booking": "canceled",
        "payments": ["refunded"],
        "refunds": [(PRICE, "succeeded", False)],
    }
    assert not RefundApproval.objects.exists()  # at once: not the staff's four eyes
    event = event_of(slot)
    assert event.status == "canceled"
    assert event.cancel_reason == "Canceled by Ada's Studio: you get a full refund"
    booking.refresh_from_db()
    assert (booking.cancel_requested_by, booking.cancel_by_builder) == (world.builder_user, True)
    [entry] = AuditEntry.objects.filter(action="bookings.booking.canceled_by_builder")
    assert (entry.actor_id, entry.data["refunded"]) == (str(world.builder_user.pk), PRICE)
    canceled = AuditEntry.objects.get(action="bookings.booking.canceled")
    assert canceled.actor_id == str(world.builder_user.pk)
    [email] = [m for m in mail.outbox if "is canceled" in m.subject]
    assert email.to == ["clara@client.example"]
    assert "called the session off" in email.body
    assert "Refund: €80.00" in email.body

    # A second click (another tab) refunds nothing more.
    again = builder.post(url, follow=True)
    assert "This booking is canceled." in again.content.decode()
    settle(world)
    assert world.state(slot)["refunds"] == [(PRICE, "succeeded", False)]


def test_an_unpaid_booking_is_released_and_nothing_is_charged(world: World) -> None:
    slot = world.book(hours_ahead=72)
    checkout = slot.payment.checkout_session_id
    mail.outbox.clear()
    listed = world.browser(world.builder_user).get("/builder/bookings/").content.decode()
    assert "Cancel (nothing was charged)" in listed

    world.browser(world.builder_user).post(f"/builder/bookings/{slot.booking.reference}/cancel/")
    settle(world)

    assert world.state(slot) == {"booking": "expired", "payments": ["expired"], "refunds": []}
    assert stripe_gateway.retrieve_checkout_session(checkout).status == "expired"
    assert event_of(slot).status == "canceled"
    [email] = [m for m in mail.outbox if "is canceled" in m.subject]
    assert "Nothing was charged." in email.body


def test_the_client_cannot_cancel_as_the_provider(world: World) -> None:
    slot = paid_slot(world, hours_ahead=10)
    answer = world.browser(world.client_user).post(
        f"/builder/bookings/{slot.booking.reference}/cancel/"
    )
    assert answer.status_code == 404
    assert slot.booking.status == "confirmed"
    assert event_of(slot).status == "active"


def test_a_session_that_started_cannot_be_canceled_by_the_builder(world: World) -> None:
    booking = make_booking(
        world.event_type,
        world.client_user,
        start_at=timezone.now() - timedelta(minutes=5),
        status="confirmed",
    )
    answer = world.browser(world.builder_user).post(
        f"/builder/bookings/{booking.reference}/cancel/", follow=True
    )
    assert "mark a no-show instead" in answer.content.decode()
    booking.refresh_from_db()
    assert (booking.status, booking.cancel_requested_at) == ("confirmed", None)


def test_calendlys_cancellation_processed_first_is_the_builders_with_a_full_refund(
    world: World, monkeypatch
) -> None:
    """Calendly's ``invitee.canceled`` (which our own cancel on Calendly causes) is
    processed before the request resumes: it is still the builder's cancellation,
    refunded in full once, whatever the policy."""
    slot = paid_slot(world, hours_ahead=10)
    real_cancel = services.cancel_calendly_event

    def calendly_answers_and_its_webhook_overtakes(booking: Booking, *, reason: str) -> None:
        real_cancel(booking, reason=reason)
        world.deliver("invitee.canceled")

    monkeypatch.setattr(
        services, "cancel_calendly_event", calendly_answers_and_its_webhook_overtakes
    )
    done = world.browser(world.builder_user).post(
        f"/builder/bookings/{slot.booking.reference}/cancel/", follow=True
    )
    assert "€80.00 is refunded." in done.content.decode()
    settle(world)

    assert world.state(slot) == {
        "booking": "canceled",
        "payments": ["refunded"],
        "refunds": [(PRICE, "succeeded", False)],
    }
    assert not RefundApproval.objects.exists()
    canceled = AuditEntry.objects.get(action="bookings.booking.canceled")
    assert canceled.actor_id == str(world.builder_user.pk)
    assert canceled.data["reason"] == "canceled by the builder on Slotpay (full refund)"
