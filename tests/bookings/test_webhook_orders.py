"""Every handler, driven by the sandboxes' signed webhooks through our real endpoints,
in several orders and with every delivery repeated: the same final state each time,
no double refund, no second payment kept.

The client leaves after picking a slot (no redirect back), so only the webhooks move
the booking; ``World.retry_waiting`` stands in for the pipeline's backoff.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import stripe
from django.conf import settings
from django.core import mail

from bookings.models import Booking
from bookings.services import expire_overdue
from payments import stripe_gateway
from payments.models import Payment, Refund
from sandbox.calendly_sandbox import services as calendly_sandbox
from tests.bookings.world import PRICE, Slot, World, world
from tests.sandbox.stripe.helpers import pay
from webhooks.models import WebhookEvent
from webhooks.services import events_replay

__all__ = ["world"]

pytestmark = pytest.mark.django_db(transaction=True)

COMPLETED = "checkout.session.completed"
SUCCEEDED = "checkout.session.async_payment_succeeded"
FAILED = "checkout.session.async_payment_failed"
REFUNDS = ("charge.refunded", "charge.refund.updated")
DISPUTED = "charge.dispute.created"
CREATED, CANCELED, NO_SHOW = "invitee.created", "invitee.canceled", "invitee_no_show.created"


def left_after_booking(world: World, **options) -> Slot:
    """Booked on Calendly, then gone: ``invitee.created`` records it and emails the link."""
    slot = world.book(come_back=False, **options)
    world.deliver(CREATED)
    assert slot.booking.status == "pending_payment"
    return slot


def paid(world: World, slot: Slot) -> Slot:
    assert world.pay(slot).status_code == 303
    world.deliver()
    world.retry_waiting()
    assert slot.booking.status == "confirmed"
    return slot


def finish(world: World) -> None:
    """Every delivery again (providers retry), then the pipeline's retries."""
    world.redeliver_everything()
    world.retry_waiting()
    assert world.dead_or_failed() == []


def test_invitee_created_alone_records_the_booking_and_emails_the_payment_link(world: World):
    slot = left_after_booking(world)
    booking = slot.booking

    assert booking.client == world.client_user
    assert not booking.needs_review
    [payment] = Payment.objects.filter(booking=booking)
    assert payment.status == "open"
    assert payment.checkout_url
    [email] = [m for m in mail.outbox if "Finish paying" in m.subject]
    assert email.to == ["clara@client.example"]
    assert payment.checkout_url in email.body
    finish(world)
    assert Payment.objects.filter(booking=booking).count() == 1
    assert len([m for m in mail.outbox if "Finish paying" in m.subject]) == 1


@pytest.mark.parametrize("order", [(COMPLETED, SUCCEEDED), (SUCCEEDED, COMPLETED)])
def test_a_bank_debit_that_succeeds_in_either_order(world: World, order) -> None:
    slot = left_after_booking(world)
    assert world.pay_by_debit(slot, "AT611904300234573201").status_code == 303
    world.time_passes()  # the debit settles

    world.deliver(*order)
    world.retry_waiting()
    assert world.state(slot) == {"booking": "confirmed", "payments": ["paid"], "refunds": []}
    finish(world)
    assert world.state(slot) == {"booking": "confirmed", "payments": ["paid"], "refunds": []}


@pytest.mark.parametrize("order", [(COMPLETED, FAILED), (FAILED, COMPLETED)])
def test_a_bank_debit_that_fails_in_either_order(world: World, order) -> None:
    slot = left_after_booking(world)
    world.pay_by_debit(slot, "AT861904300235473202")
    world.deliver(COMPLETED) if order[0] == COMPLETED else None
    assert slot.booking.status == "pending_payment"  # a debit on its way holds the slot
    world.time_passes()

    world.deliver(*order)
    world.retry_waiting()
    finish(world)
    assert world.state(slot) == {"booking": "expired", "payments": ["failed"], "refunds": []}
    event = slot.invitee.scheduled_event.__class__.objects.get(pk=slot.invitee.scheduled_event_id)
    assert event.status == "canceled"  # the slot is free


@pytest.mark.parametrize("refund_first", [True, False])
def test_a_dashboard_refund_before_or_after_completion(world: World, refund_first) -> None:
    slot = left_after_booking(world)
    world.pay(slot)
    intent = stripe_gateway.retrieve_checkout_session(slot.payment.checkout_session_id)
    # Made by someone in the Stripe dashboard: not through refund_request.
    stripe_gateway.create_refund(
        refund_ref="dashboard", payment_intent=intent.payment_intent_id, amount=3000
    )

    world.deliver(*((*REFUNDS, COMPLETED) if refund_first else (COMPLETED, *REFUNDS)))
    world.retry_waiting()
    finish(world)

    assert world.state(slot) == {
        "booking": "confirmed",
        "payments": ["partially_refunded"],
        "refunds": [(3000, "succeeded", True)],
    }
    # Cancelling now refunds what the policy gives of what is left, no more.
    world.browser(world.client_user).post(f"/bookings/{slot.booking.reference}/cancel/")
    world.deliver()
    finish(world)
    assert world.state(slot) == {
        "booking": "canceled",
        "payments": ["refunded"],
        "refunds": [(3000, "succeeded", True), (PRICE - 3000, "succeeded", False)],
    }


@pytest.mark.parametrize("cancel_first", [True, False])
def test_a_reschedule_moves_the_payment_whichever_event_comes_first(world, cancel_first):
    slot = paid(world, left_after_booking(world))
    old_booking = slot.booking
    new_invitee = world.reschedule(slot)

    world.deliver(*((CANCELED, CREATED) if cancel_first else (CREATED, CANCELED)))
    world.retry_waiting()
    finish(world)

    old_booking.refresh_from_db()
    new = Slot(new_invitee, None)
    assert old_booking.status == "rescheduled"
    assert old_booking.rescheduled_to == new.booking
    assert world.state(new) == {"booking": "confirmed", "payments": ["paid"], "refunds": []}
    assert new.booking.client == world.client_user
    assert Payment.objects.count() == 1
    assert not Refund.objects.exists()
    assert new.booking.start_at == new_invitee.scheduled_event.start_time


@pytest.mark.parametrize("cancel_first", [True, False])
def test_a_reschedule_before_payment_ends_clean_whichever_event_comes_first(world, cancel_first):
    """Both of Calendly's reschedule events, in either order and each delivered again:
    the old booking lets its slot go, the new one waits for payment, nobody is
    flagged and Support is not emailed."""
    slot = left_after_booking(world)
    old_booking = slot.booking
    new_invitee = world.reschedule(slot)
    mail.outbox.clear()

    world.deliver(*((CANCELED, CREATED) if cancel_first else (CREATED, CANCELED)))
    world.retry_waiting()
    finish(world)
    events_replay(events=WebhookEvent.objects.all(), actor="test", reason="again", inline=True)

    old_booking.refresh_from_db()
    new = Slot(new_invitee, None).booking
    assert (new.status, new.client, new.needs_review, new.review_reason) == (
        "pending_payment",
        world.client_user,
        False,
        "",
    )
    assert not [m for m in mail.outbox if "needs" in m.subject.lower()]
    assert world.dead_or_failed() == []
    assert old_booking.status == "expired"
    assert old_booking.rescheduled_to == new


@pytest.mark.parametrize("deliveries", [(COMPLETED,), ()])
def test_a_second_payment_for_a_paid_booking_is_refunded(world: World, deliveries) -> None:
    slot = paid(world, left_after_booking(world))
    # Another session for the same booking (say, a stale tab of an older flow).
    second = stripe.StripeClient(
        settings.STRIPE_API_KEY, base_addresses={"api": settings.STRIPE_API_BASE}
    ).v1.checkout.sessions.create(
        {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": "eur",
                        "unit_amount": PRICE,
                        "product_data": {"name": "Portfolio review"},
                    },
                }
            ],
            "success_url": f"{world.site.url}/?session_id={{CHECKOUT_SESSION_ID}}",
            "metadata": {"booking": str(slot.booking.reference)},
        }
    )
    assert pay(second.url).status_code == 303
    world.deliver(*deliveries)
    world.retry_waiting()
    finish(world)

    assert world.state(slot) == {
        "booking": "confirmed",
        "payments": ["paid", "refunded"],
        "refunds": [(PRICE, "succeeded", False)],
    }
    assert Refund.objects.get().reason.startswith("Automatic: booking paid twice")


@pytest.mark.parametrize("dispute_first", [True, False])
def test_a_dispute_marks_booking_and_payment_and_alerts_finance(world, dispute_first, staff):
    from django.contrib.auth.models import Group

    staff.groups.add(Group.objects.get_or_create(name="Finance")[0])
    slot = left_after_booking(world)
    world.pay(slot, "4000 0000 0000 0259")
    world.time_passes()

    world.deliver(*((DISPUTED, COMPLETED) if dispute_first else (COMPLETED, DISPUTED)))
    world.retry_waiting()
    finish(world)

    assert world.state(slot) == {"booking": "disputed", "payments": ["disputed"], "refunds": []}
    [alert] = [m for m in mail.outbox if "Dispute" in m.subject]
    assert alert.to == [staff.email]
    assert "€80.00" in alert.body  # as Finance reads money, not "8000 EUR (minor units)"


def test_a_no_show_is_recorded_without_refund(world: World) -> None:
    slot = paid(world, left_after_booking(world))
    calendly_sandbox.invitee_mark_no_show(invitee=slot.invitee, urls=world.site.urls)

    world.deliver(NO_SHOW)
    finish(world)

    assert world.state(slot) == {"booking": "no_show", "payments": ["paid"], "refunds": []}


FAR = 10_000  # hours: a tier no slot reaches, so the next one applies


@pytest.mark.parametrize(
    ("tiers", "refund"),
    [
        (None, PRICE),  # the default policy, a slot 72 h or more ahead: 100 %
        (
            [{"min_notice_hours": FAR, "percent": 100}, {"min_notice_hours": 0, "percent": 50}],
            PRICE // 2,
        ),
        ([{"min_notice_hours": FAR, "percent": 100}, {"min_notice_hours": 0, "percent": 0}], 0),
    ],
)
def test_a_cancellation_on_calendly_refunds_what_the_policy_gives(world, tiers, refund, staff):
    if tiers:
        world.event_type.set_refund_policy(tiers, actor=staff)
    slot = paid(world, left_after_booking(world))
    # A later change of policy does not touch what the client agreed to.
    world.event_type.set_refund_policy([{"min_notice_hours": 0, "percent": 0}], actor=staff)
    calendly_sandbox.invitee_cancel(invitee=slot.invitee, reason="Ill", urls=world.site.urls)

    world.deliver(CANCELED)
    world.deliver()
    finish(world)

    state = world.state(slot)
    assert state["booking"] == "canceled"
    assert state["refunds"] == ([(refund, "succeeded", False)] if refund else [])
    assert state["payments"] == [
        "refunded" if refund == PRICE else "partially_refunded" if refund else "paid"
    ]


def test_a_cancellation_on_calendly_before_the_payments_webhook_still_refunds(
    world: World,
) -> None:
    """Paid at Stripe, then cancelled on Calendly, and Calendly's event comes first: the
    handler finds the session paid (the booking is confirmed by it) and applies the
    cancellation to the paid booking. It used to stop there: confirmed, no refund, while
    the slot was gone at Calendly."""
    slot = left_after_booking(world)
    assert world.pay(slot).status_code == 303
    calendly_sandbox.invitee_cancel(invitee=slot.invitee, reason="Ill", urls=world.site.urls)

    world.deliver(CANCELED)
    world.deliver()
    finish(world)

    assert world.state(slot) == {
        "booking": "canceled",
        "payments": ["refunded"],
        "refunds": [(PRICE, "succeeded", False)],
    }


def test_a_cancellation_before_payment_expires_the_checkout(world: World) -> None:
    slot = left_after_booking(world)
    calendly_sandbox.invitee_cancel(
        invitee=slot.invitee, reason="Changed mind", urls=world.site.urls
    )

    world.deliver(CANCELED)
    finish(world)

    assert world.state(slot) == {"booking": "expired", "payments": ["expired"], "refunds": []}
    session = stripe_gateway.retrieve_checkout_session(slot.payment.checkout_session_id)
    assert session.status == "expired"


def test_a_booking_without_a_valid_intent_is_offered_to_its_invitee_then_released(
    world: World,
) -> None:
    """No slot held for ever: the invitee is emailed a claim link (bookings.claims), no
    payment is opened for nobody, and unpaid past the hold the slot is released on
    Calendly, saying why."""
    invitee = calendly_sandbox.invitee_book(
        event_type=world.sandbox_type,
        start=calendly_sandbox.open_slots(world.sandbox_type)[-1],
        name="Walk In",
        email="walk@in.example",
        invitee_timezone="Europe/Paris",
        urls=world.site.urls,
        tracking={"utm_content": "forged-or-expired"},
    )
    world.deliver(CREATED)
    finish(world)

    booking = Booking.objects.get()
    assert booking.calendly_invitee_uri.endswith(invitee.uuid)
    assert (booking.client, booking.needs_review, booking.status) == (
        None,
        False,
        "pending_payment",
    )
    assert not Payment.objects.exists()  # nobody to pay yet: the invitee claims it first
    [claim] = [m for m in mail.outbox if m.subject.startswith("Claim and pay")]
    assert claim.to == ["walk@in.example"]
    assert not [m for m in mail.outbox if "needs a client" in m.subject]
    Booking.objects.filter(pk=booking.pk).update(
        created_at=booking.created_at - timedelta(minutes=settings.BOOKING_PAYMENT_HOLD_MINUTES + 1)
    )
    assert expire_overdue() == 1
    finish(world)
    assert Booking.objects.get(pk=booking.pk).status == "expired"
    event = invitee.scheduled_event.__class__.objects.get(pk=invitee.scheduled_event_id)
    assert (event.status, event.cancel_reason) == (
        "canceled",
        f"Not paid within {settings.BOOKING_PAYMENT_HOLD_MINUTES} minutes of booking",
    )


def test_an_amount_that_does_not_match_is_flagged_not_confirmed(world: World) -> None:
    slot = left_after_booking(world)
    Booking.objects.filter(pk=slot.booking.pk).update(price_amount=PRICE + 100)
    world.pay(slot)

    world.deliver()
    finish(world)

    payment = slot.payment
    assert (slot.booking.status, payment.status, payment.needs_review) == (
        "pending_payment",
        "paid",
        True,
    )
    assert "booking expects" in payment.review_reason


def test_an_elevated_radar_risk_is_flagged_for_staff_and_still_confirmed(world: World) -> None:
    slot = left_after_booking(world)
    world.pay(slot, "4000 0000 0000 9235")

    world.deliver()
    finish(world)

    payment = slot.payment
    assert (slot.booking.status, payment.status, payment.risk_level) == (
        "confirmed",
        "paid",
        "elevated",
    )
    assert payment.needs_review
    assert payment.review_reason == "Radar risk level elevated"


def test_the_success_page_says_processing_until_a_debit_settles(world: World) -> None:
    slot = left_after_booking(world)
    back = world.pay_by_debit(slot, "AT611904300234573201")
    page = f"{urlsplit(back['Location']).path}?{urlsplit(back['Location']).query}"
    browser = world.browser(world.client_user)

    # Back from Checkout, the page asks Stripe once (by POST), then reloads itself.
    waiting = world.come_back(browser, back["Location"], follow=True)
    assert b"Payment processing" in waiting.content
    assert b'http-equiv="refresh"' in waiting.content
    world.time_passes()
    world.deliver()
    finish(world)
    done = browser.get(page)
    assert b"Booking confirmed" in done.content
    assert b'http-equiv="refresh"' not in done.content


def test_replaying_the_payment_after_a_partial_refund_refunds_nothing_more(world, staff):
    world.event_type.set_refund_policy(
        [{"min_notice_hours": FAR, "percent": 100}, {"min_notice_hours": 0, "percent": 50}],
        actor=staff,
    )
    slot = paid(world, left_after_booking(world))
    world.browser(world.client_user).post(f"/bookings/{slot.booking.reference}/cancel/")
    world.deliver()
    finish(world)
    kept = world.state(slot)
    assert kept["refunds"] == [(PRICE // 2, "succeeded", False)]

    # Staff replay every Stripe event (say, after an incident): nothing changes.
    events_replay(
        events=WebhookEvent.objects.filter(provider="stripe"),
        actor=staff,
        reason="test",
        inline=True,
    )
    world.retry_waiting()
    assert world.state(slot) == kept


def test_a_reschedule_never_raises_the_refund(world: World) -> None:
    """Booked inside the no-refund window, moved to a date far enough out for a full
    refund, then cancelled: the client gets what cancelling the first booking gave
    when it was moved (nothing), not the new date's full refund."""
    world.event_type.set_refund_policy(
        [{"min_notice_hours": 100, "percent": 100}, {"min_notice_hours": 0, "percent": 0}],
        actor="test",
    )
    slot = paid(world, left_after_booking(world, hours_ahead=26))
    moved = world.reschedule(slot)
    world.deliver(CANCELED, CREATED)
    world.retry_waiting()
    new = Slot(moved, None).booking
    assert new.status == "confirmed"

    page = world.browser(world.client_user).get(f"/bookings/{new.reference}/").content.decode()
    assert "at most 0% back" in page
    world.browser(world.client_user).post(f"/bookings/{new.reference}/cancel/")
    finish(world)

    assert world.state(Slot(moved, None)) == {
        "booking": "canceled",
        "payments": ["paid"],
        "refunds": [],
    }
