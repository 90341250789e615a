"""The paid booking from end to end: our pages, Calendly's redirect, Stripe Checkout,
the providers' signed webhooks through our real endpoints, cancellation and refund."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail

from audit.models import AuditEntry
from bookings import tasks
from bookings.models import Booking, EventType, PolicyConsent
from payments import stripe_gateway
from payments.models import Payment, Refund
from sandbox.calendly_sandbox import services as calendly_sandbox
from tests.bookings.world import PRICE, World, world

__all__ = ["world"]

pytestmark = pytest.mark.django_db(transaction=True)


def test_book_pay_and_cancel_for_a_full_refund(world: World) -> None:
    slot = world.book()

    # Calendly's redirect → verified over the API → recorded → sent to Checkout.
    assert slot.response.status_code == 303, slot.response.content[:500]
    booking = slot.booking
    assert booking.client == world.client_user
    assert (booking.status, booking.price_amount, booking.currency) == (
        "pending_payment",
        PRICE,
        "eur",
    )
    assert booking.invitee_time_zone == "America/New_York"
    consent = PolicyConsent.objects.get()
    assert (consent.booking, consent.policy_version, consent.user) == (booking, 1, booking.client)
    assert slot.response["Location"] == world.checkout_url(slot)

    paid = world.pay(slot)
    assert paid.status_code == 303
    # Back from Checkout: confirmed at once (Stripe is asked), before any webhook.
    back = world.come_back(world.browser(world.client_user), paid["Location"], follow=True)
    assert back.status_code == 200
    assert b"Booking confirmed" in back.content
    assert slot.booking.status == "confirmed"

    # Then every webhook, twice: nothing more happens.
    world.deliver()
    world.redeliver_everything()
    world.retry_waiting()
    assert world.dead_or_failed() == []
    assert world.state(slot) == {"booking": "confirmed", "payments": ["paid"], "refunds": []}
    payment = slot.payment
    assert (payment.amount, payment.card_last4, payment.card_brand) == (PRICE, "4242", "visa")
    assert payment.receipt_url.startswith(world.site.url)

    page = world.browser(world.client_user).get(f"/bookings/{booking.reference}/")
    assert b"80.00" in page.content
    assert b"refund-amount" in page.content

    cancel = world.browser(world.client_user).post(f"/bookings/{booking.reference}/cancel/")
    assert cancel.status_code == 302
    world.settle_everything()
    world.redeliver_everything()
    world.retry_waiting()

    assert world.state(slot) == {
        "booking": "canceled",
        "payments": ["refunded"],
        "refunds": [(PRICE, "succeeded", False)],
    }
    assert world.dead_or_failed() == []
    assert (
        slot.invitee.scheduled_event.__class__.objects.get(
            pk=slot.invitee.scheduled_event_id
        ).status
        == "canceled"
    )  # the slot is free again on Calendly
    mine = world.browser(world.client_user).get("/bookings/")
    assert b"Canceled" in mine.content
    assert b"Refunded" in mine.content
    subjects = [m.subject for m in mail.outbox]
    assert any("Finish paying" in s for s in subjects)
    assert any("is confirmed" in s for s in subjects)
    assert any("is canceled" in s for s in subjects)
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {
        "bookings.consent.given",
        "bookings.booking.recorded",
        "payments.checkout.started",
        "payments.payment.paid",
        "bookings.booking.confirmed",
        "bookings.booking.canceled",
        "payments.refund.requested",
        "payments.refund.succeeded",
        "payments.payment.refunded",
    } <= actions


def test_a_declined_card_leaves_no_confirmed_booking(world: World) -> None:
    slot = world.book()
    declined = world.pay(slot, "4000 0000 0000 0002")
    world.deliver()
    world.retry_waiting()

    assert declined.status_code == 402
    assert b"declined" in declined.content
    # The client may try another card until the hold ends; nothing is confirmed.
    assert world.state(slot) == {"booking": "pending_payment", "payments": ["open"], "refunds": []}
    assert not Payment.objects.filter(status="paid").exists()
    page = world.browser(world.client_user).get(f"/bookings/{slot.booking.reference}/")
    assert b"Awaiting payment" in page.content
    assert b"Pay now" in page.content

    # Stripe's session runs out (the sandbox's clock): the booking expires, the slot frees.
    world.settle_everything()
    assert world.state(slot) == {"booking": "expired", "payments": ["expired"], "refunds": []}
    assert (
        slot.invitee.scheduled_event.__class__.objects.get(
            pk=slot.invitee.scheduled_event_id
        ).status
        == "canceled"
    )


def test_no_personal_data_reaches_stripe_metadata(world: World) -> None:
    slot = world.book()
    world.pay(slot)
    world.settle_everything()
    world.browser(world.client_user).post(f"/bookings/{slot.booking.reference}/cancel/")
    world.settle_everything()

    metadata = world.stripe_metadata()
    assert {"booking": str(slot.booking.reference)} in metadata
    refund = Refund.objects.get()
    assert {"refund": refund.idempotency_ref} in metadata
    for item in metadata:
        assert set(item) <= {"booking", "refund"}, item
        text = " ".join(item.values()).lower()
        for personal in ("clara", "client.example", "@", "+1"):
            assert personal not in text, item


def test_an_unpaid_booking_past_its_hold_frees_the_slot(world: World, settings) -> None:
    slot = world.book()
    booking = slot.booking
    Booking.objects.filter(pk=booking.pk).update(
        created_at=booking.created_at - timedelta(minutes=settings.BOOKING_PAYMENT_HOLD_MINUTES + 1)
    )
    fresh = world.book(world.person("bob@client.example", "Bob"))

    assert tasks.expire_unpaid() == 1
    world.deliver()
    world.retry_waiting()

    assert world.state(slot) == {"booking": "expired", "payments": ["expired"], "refunds": []}
    assert world.state(fresh) == {"booking": "pending_payment", "payments": ["open"], "refunds": []}
    assert stripe_gateway.retrieve_checkout_session(slot.payment.checkout_session_id).status == (
        "expired"
    )  # a late payment is impossible
    event = slot.invitee.scheduled_event.__class__.objects.get(pk=slot.invitee.scheduled_event_id)
    assert event.status == "canceled"
    assert world.dead_or_failed() == []


def test_a_payment_whose_webhook_was_lost_is_found_before_expiring(world: World, settings):
    slot = world.book()
    world.pay(slot)  # no webhook delivered, and the client never came back
    Booking.objects.filter(pk=slot.booking.pk).update(
        created_at=slot.booking.created_at - timedelta(hours=2)
    )

    assert tasks.expire_unpaid() == 0
    assert world.state(slot) == {"booking": "confirmed", "payments": ["paid"], "refunds": []}


def test_the_api_cancels_with_the_policy_refund_and_refuses_a_second_time(world: World) -> None:
    slot = world.book()
    world.pay(slot)
    world.deliver()
    world.retry_waiting()
    api = world.browser(world.client_user)

    listed = api.get("/api/v1/bookings/").json()["results"]
    assert [(b["id"], b["status"], b["price"]) for b in listed] == [
        (str(slot.booking.reference), "confirmed", "€80.00")
    ]
    done = api.post(f"/api/v1/bookings/{slot.booking.reference}/cancel/")
    again = api.post(f"/api/v1/bookings/{slot.booking.reference}/cancel/")
    world.settle_everything()

    assert done.status_code == 200, done.content
    assert done.json()["refund_amount"] == PRICE
    assert done.json()["booking"]["status"] == "canceled"
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "cancel_refused"
    assert world.state(slot)["refunds"] == [(PRICE, "succeeded", False)]


def test_yen_with_stripe_tax_records_the_tax_and_confirms(world: World) -> None:
    EventType.objects.filter(pk=world.event_type.pk).update(
        currency="jpy", price_amount=5000, automatic_tax=True
    )
    slot = world.book()
    world.pay(slot)
    world.deliver()
    world.retry_waiting()

    payment = slot.payment
    assert slot.booking.status == "confirmed"
    assert (payment.currency, payment.tax_amount > 0) == ("jpy", True)
    assert payment.amount == 5000 + payment.tax_amount
    assert not payment.needs_review
    page = world.browser(world.client_user).get("/bookings/")
    assert "¥5,000" in page.content.decode()


def test_the_booking_page_links_to_calendlys_own_reschedule_and_cancel_pages(world: World):
    """As Calendly gave them when the booking was recorded (no provider call on the
    page); a reschedule there moves the payment, and the new booking links its own."""
    slot = world.book()
    assert world.pay(slot).status_code == 303
    world.deliver()
    world.retry_waiting()
    booking = slot.booking
    reschedule = f"{world.site.url}/sandbox/calendly/reschedulings/{slot.invitee.uuid}/"
    cancel = f"{world.site.url}/sandbox/calendly/cancellations/{slot.invitee.uuid}/"
    assert (booking.calendly_reschedule_url, booking.calendly_cancel_url) == (reschedule, cancel)

    browser = world.browser(world.client_user)
    page = browser.get(f"/bookings/{booking.reference}/").content.decode()
    assert f'href="{reschedule}"' in page
    assert f'href="{cancel}"' in page

    # The client follows Calendly's reschedule page and picks another time there.
    start = calendly_sandbox.open_slots(world.sandbox_type)[-1]
    moved = browser.post(
        reschedule.removeprefix(world.site.url), {"start": start.isoformat(), "reason": "Clash"}
    )
    assert moved.status_code == 302
    world.deliver()
    world.retry_waiting()

    successor = Booking.objects.exclude(pk=booking.pk).get()
    assert (Booking.objects.get(pk=booking.pk).status, successor.status) == (
        "rescheduled",
        "confirmed",
    )
    assert Payment.objects.get().booking == successor
    old_page = browser.get(f"/bookings/{booking.reference}/").content.decode()
    assert "/sandbox/calendly/reschedulings/" not in old_page
    new_page = browser.get(f"/bookings/{successor.reference}/").content.decode()
    assert f'href="{successor.calendly_reschedule_url}"' in new_page
    assert slot.invitee.uuid not in successor.calendly_reschedule_url
