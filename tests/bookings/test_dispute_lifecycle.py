"""A dispute from its opening to its end, through the Stripe sandbox (its dashboard's
steps) and our real webhook endpoint: signed deliveries, real verification, the real
inbox. Each step is audited and Finance told; the payment's net amount follows the
money; a won dispute gives the payment back and the booking the status it had, a lost
one is never refunded again; a replay, or deliveries out of order, end where Stripe is."""

from __future__ import annotations

import html
from datetime import timedelta
from uuid import uuid4

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.core import mail
from django.test import Client

from audit.models import AuditEntry
from bookings.models import IllegalTransition
from bookings.services import booking_refund_by_staff, complete_past
from payments import stripe_gateway
from payments.models import Dispute, Payment, Refund
from payments.services import RefundRefused, refund_request
from sandbox.stripe_sandbox import services as stripe_sandbox
from sandbox.stripe_sandbox.models import StripeObject
from tests.bookings.world import PRICE, Slot, World, world
from tests.payments.test_backoffice_refunds import (
    FINANCE,
    member,
    nonce_of,
    refund_page,
    signed_in,
)
from webhooks.models import WebhookEvent
from webhooks.services import events_replay

__all__ = ["world"]

pytestmark = pytest.mark.django_db(transaction=True)

CREATED = "charge.dispute.created"
WITHDRAWN = "charge.dispute.funds_withdrawn"
UPDATED = "charge.dispute.updated"
CLOSED = "charge.dispute.closed"
REINSTATED = "charge.dispute.funds_reinstated"
FEE = 1500


@pytest.fixture
def finance(world: World, staff):
    staff.groups.add(Group.objects.get_or_create(name="Finance")[0])
    return staff


def paid_then_disputed(world: World, *, deliver_dispute: bool = True) -> Slot:
    """Booked and paid with Stripe's 0259 card; the cardholder disputes it (its
    ``charge.dispute.created`` delivered unless ``deliver_dispute`` is False)."""
    slot = world.book(come_back=False)
    world.deliver("invitee.created")
    assert world.pay(slot, "4000 0000 0000 0259").status_code == 303
    world.deliver("checkout.session.completed")
    world.retry_waiting()
    assert slot.booking.status == "confirmed"
    world.time_passes()  # the dispute opens
    if deliver_dispute:
        world.deliver(CREATED)
        world.retry_waiting()
    return slot


def stripe_dispute_id() -> str:
    return StripeObject.objects.get(object="dispute").id


def dispute_steps() -> list[str]:
    return list(
        AuditEntry.objects.filter(action__startswith="payments.dispute.")
        .order_by("sequence")
        .values_list("action", flat=True)
    )


def alerts() -> list[str]:
    """Finance's dispute emails, by subject (without the site's subject prefix)."""
    return [m.subject[m.subject.index("Dispute") :] for m in mail.outbox if "Dispute" in m.subject]


def our_trail() -> list[tuple[str, str]]:
    """What the payments and bookings wrote to the audit trail (not the inbox's own)."""
    return list(
        AuditEntry.objects.filter(action__regex=r"^(payments|bookings)\.")
        .order_by("sequence")
        .values_list("action", "target_id")
    )


def replay_everything(world: World) -> None:
    """Every delivery again (Stripe retries), then staff replay every Stripe event
    through the handlers (after an incident, say)."""
    world.redeliver_everything()
    events_replay(
        events=WebhookEvent.objects.filter(provider="stripe"),
        actor="test",
        reason="replayed on purpose",
        inline=True,
    )
    world.retry_waiting()
    assert world.dead_or_failed() == []


def test_a_won_dispute_takes_the_money_and_gives_it_back(world: World, finance) -> None:
    slot = paid_then_disputed(world)

    dispute = Dispute.objects.get()
    payment = slot.payment
    assert (dispute.stripe_dispute_id, dispute.status, dispute.reason) == (
        stripe_dispute_id(),
        "needs_response",
        "fraudulent",
    )
    assert (dispute.amount, dispute.currency, dispute.payment_id) == (PRICE, "eur", payment.pk)
    assert (dispute.evidence_due_by - dispute.opened_at).days == 7
    assert (payment.status, slot.booking.status, payment.net_amount) == (
        "disputed",
        "disputed",
        PRICE,
    )

    world.time_passes()  # Stripe withdraws the funds and its fee
    world.deliver(WITHDRAWN)
    dispute.refresh_from_db()
    assert (dispute.funds_withdrawn, dispute.fees) == (PRICE, FEE)
    assert Payment.objects.get(pk=payment.pk).net_amount == 0

    stripe_sandbox.dispute_submit_evidence(dispute.stripe_dispute_id, text="Session held.")
    world.deliver(UPDATED)
    dispute.refresh_from_db()
    assert dispute.status == "under_review"

    stripe_sandbox.dispute_close(dispute.stripe_dispute_id, won=True)
    world.deliver(CLOSED, REINSTATED)

    dispute.refresh_from_db()
    payment.refresh_from_db()
    assert (dispute.status, dispute.funds_withdrawn, dispute.funds_reinstated) == (
        "won",
        PRICE,
        PRICE,
    )
    assert dispute.closed_at is not None
    assert (payment.status, payment.net_amount) == ("paid", PRICE)
    # The booking is as it was when disputed, and the trail says why.
    assert slot.booking.status == "confirmed"
    [back] = AuditEntry.objects.filter(
        action="bookings.booking.confirmed", data__from="disputed"
    ).order_by("sequence")
    assert (back.target_id, back.data["reason"]) == (
        str(slot.booking.pk),
        f"dispute {dispute.stripe_dispute_id} won",
    )
    assert dispute_steps() == [
        "payments.dispute.opened",
        "payments.dispute.funds_withdrawn",
        "payments.dispute.updated",
        "payments.dispute.won",
        "payments.dispute.funds_reinstated",
    ]
    statuses = AuditEntry.objects.filter(action__startswith="payments.payment.").order_by(
        "sequence"
    )
    assert [(e.data["from"], e.data["to"]) for e in statuses][-2:] == [
        ("paid", "disputed"),
        ("disputed", "paid"),
    ]
    assert alerts() == [
        f"Dispute on payment {payment.pk}",
        f"Dispute {dispute.stripe_dispute_id} on payment {payment.pk}: funds withdrawn",
        f"Dispute {dispute.stripe_dispute_id} on payment {payment.pk}: updated",
        # Closed and reinstated at once at Stripe: one re-read, one alert, two steps.
        f"Dispute {dispute.stripe_dispute_id} on payment {payment.pk}: won",
    ]
    [withdrawn_mail] = [m for m in mail.outbox if m.subject.endswith("funds withdrawn")]
    assert "€80.00" in withdrawn_mail.body
    assert "€15.00" in withdrawn_mail.body  # the dispute fee
    assert "clara" not in withdrawn_mail.body.lower()  # ids and amounts, no personal data

    trail, sent = our_trail(), len(mail.outbox)
    replay_everything(world)
    assert (our_trail(), len(mail.outbox)) == (trail, sent)

    # Won: the payment can be refunded again, and its net amount follows.
    refund = refund_request(
        booking_id=payment.booking_id, amount=1000, reason="goodwill", actor=finance
    )
    assert refund.status == Refund.Status.SUCCEEDED
    assert Payment.objects.get(pk=payment.pk).net_amount == PRICE - 1000


def test_a_lost_dispute_is_never_refunded_again(world: World, finance) -> None:
    slot = paid_then_disputed(world)
    stripe_sandbox.dispute_close(stripe_dispute_id(), won=False)
    world.deliver()  # the withdrawal Stripe makes first, then the close
    world.retry_waiting()

    dispute = Dispute.objects.get()
    payment = slot.payment
    assert (dispute.status, dispute.funds_withdrawn, dispute.funds_reinstated) == (
        "lost",
        PRICE,
        0,
    )
    assert (payment.status, payment.net_amount, slot.booking.status) == (
        "dispute_lost",
        0,
        "disputed",
    )
    assert dispute_steps()[-1] == "payments.dispute.lost"
    assert alerts()[-1] == f"Dispute {dispute.stripe_dispute_id} on payment {payment.pk}: lost"

    # Every door to a refund says why not, and the attempt is on the record.
    with pytest.raises(RefundRefused, match=f"Payment {payment.pk} lost its dispute") as staff:
        booking_refund_by_staff(
            booking=slot.booking,
            payment=payment,
            amount=1000,
            reason="Goodwill",
            actor=finance,
            nonce=uuid4(),
        )
    assert "took €80.00 back, so it is never refunded again" in str(staff.value)
    with pytest.raises(RefundRefused, match="no payment that can be refunded: Payment"):
        refund_request(booking_id=payment.booking_id, amount=PRICE, reason="cancel", actor="x")
    refused = AuditEntry.objects.filter(action="payments.refund.refused").order_by("sequence")
    assert [(e.target_id, e.data["payment_status"], e.data["amount"]) for e in refused] == [
        (str(payment.pk), "dispute_lost", 1000),
        (str(payment.pk), "dispute_lost", PRICE),
    ]
    assert not Refund.objects.exists()
    charge = stripe_gateway.retrieve_charge(payment.charge_id)
    assert charge.amount_refunded == 0

    # The payment's page says why instead of offering the refund button.
    browser = Client()
    browser.force_login(finance)
    page = browser.get(f"/admin/payments/payment/{payment.pk}/change/")
    assert page.status_code == 200
    assert f"No refund: Payment {payment.pk} lost its dispute".encode() in page.content
    assert b"/refund/?payment=" not in page.content
    assert b"Net amount" in page.content
    assert "€0.00 (paid €80.00".encode() in page.content

    trail, sent = our_trail(), len(mail.outbox)
    replay_everything(world)
    assert (our_trail(), len(mail.outbox)) == (trail, sent)
    assert Payment.objects.get(pk=payment.pk).status == "dispute_lost"


@pytest.mark.parametrize(
    "order",
    [
        # Stripe's order would be updated, then closed and reinstated.
        [CLOSED, REINSTATED, UPDATED],
        [REINSTATED, UPDATED, CLOSED],
        # Nothing delivered before the end, and everything backwards.
        [REINSTATED, CLOSED, UPDATED, WITHDRAWN, CREATED],
    ],
    ids=["closed-before-updated", "reinstated-first", "all-backwards"],
)
def test_deliveries_out_of_order_end_where_stripe_is(world: World, finance, order) -> None:
    early = CREATED not in order
    slot = paid_then_disputed(world, deliver_dispute=early)
    if early:
        world.time_passes()
        world.deliver(WITHDRAWN)
    dispute_id = stripe_dispute_id()
    stripe_sandbox.dispute_submit_evidence(dispute_id, text="Session held.")
    stripe_sandbox.dispute_close(dispute_id, won=True)

    world.deliver(*order)
    world.retry_waiting()

    dispute = Dispute.objects.get()
    payment = slot.payment
    assert (dispute.status, dispute.funds_withdrawn, dispute.funds_reinstated) == (
        "won",
        PRICE,
        PRICE,
    )
    assert (payment.status, payment.net_amount) == ("paid", PRICE)
    steps = dispute_steps()
    # Never backwards: nothing recorded after the close but the money it gave back.
    assert steps.index("payments.dispute.won") >= len(steps) - 2
    assert steps.count("payments.dispute.won") == 1
    assert steps.count("payments.dispute.funds_reinstated") == 1
    assert world.dead_or_failed() == []
    # Won: the booking is confirmed again (a dispute first heard of when it was
    # already won never marked it).
    assert slot.booking.status == "confirmed"
    backs = AuditEntry.objects.filter(action="bookings.booking.confirmed", data__from="disputed")
    assert backs.count() == (1 if early else 0)


def test_a_won_dispute_gives_a_completed_booking_back_its_state(world: World, finance) -> None:
    slot = paid_then_disputed(world, deliver_dispute=False)
    after = slot.booking.end_at + timedelta(hours=settings.BOOKING_COMPLETE_AFTER_HOURS + 1)
    assert complete_past(now=after) == 1
    world.deliver(CREATED)
    world.retry_waiting()
    booking = slot.booking
    assert (booking.status, booking.disputed_from) == ("disputed", "completed")

    # Only the dispute's end gives it back: a no-show marked (or a cancellation
    # delivered) meanwhile does not end the dispute.
    for move in (booking.mark_no_show, booking.cancel):
        with pytest.raises(IllegalTransition):
            move(actor="test")
    assert slot.booking.status == "disputed"

    stripe_sandbox.dispute_close(stripe_dispute_id(), won=True)
    world.deliver()
    world.retry_waiting()
    booking = slot.booking
    assert (booking.status, booking.disputed_from) == ("completed", "")
    back = AuditEntry.objects.filter(action__startswith="bookings.booking.").latest("sequence")
    assert (back.action, back.data["from"], back.data["to"]) == (
        "bookings.booking.completed",
        "disputed",
        "completed",
    )
    assert (slot.payment.status, world.dead_or_failed()) == ("paid", [])


def test_a_stale_refund_form_on_a_disputed_payment_says_why(world: World) -> None:
    """Finance opened the refund page while the payment was paid; the dispute came
    before they submitted: the form's answer is the dispute, not "Only €0.00 remains",
    and the attempt is on the record."""
    slot = paid_then_disputed(world, deliver_dispute=False)
    payment = slot.payment
    browser = signed_in(member("finance@slotpay.example", *FINANCE))
    page = browser.get(refund_page(slot.booking))
    assert b'data-amount="remaining">\xe2\x82\xac80.00' in page.content
    stale = {"amount": "10.00", "reason": "Goodwill", "nonce": nonce_of(page)}

    world.deliver(CREATED)
    answer = browser.post(refund_page(slot.booking), stale)
    assert answer.status_code == 200
    why = (
        f"Payment {payment.pk} is under an open dispute ({stripe_dispute_id()}): Stripe "
        "refuses refunds until it is closed. Answer it in the Stripe dashboard."
    )
    assert answer.context["form"].non_field_errors() == [why]
    assert f'<p class="errornote">{html.escape(why)}</p>'.encode() in answer.content
    assert b"remains." not in answer.content

    stripe_sandbox.dispute_close(stripe_dispute_id(), won=False)
    world.deliver()
    world.retry_waiting()
    answer = browser.post(refund_page(slot.booking), {**stale, "nonce": str(uuid4())})
    lost = f"Payment {payment.pk} lost its dispute ({stripe_dispute_id()}): the client's bank "
    assert answer.context["form"].non_field_errors()[0].startswith(lost)
    assert b"remains." not in answer.content

    # The page itself says why, and offers no form.
    page = browser.get(refund_page(slot.booking))
    assert f'<p class="errornote">{html.escape(lost)}'.encode() in page.content
    assert b'name="nonce"' not in page.content
    refused = AuditEntry.objects.filter(action="payments.refund.refused").order_by("sequence")
    assert [(e.data["payment_status"], e.data["amount"]) for e in refused] == [
        ("disputed", 1000),
        ("dispute_lost", 1000),
    ]
    assert not Refund.objects.exists()


def test_a_charged_back_booking_is_not_paid_for_twice(world: World) -> None:
    """The client lost the dispute (their bank took the money back), then moved the
    booking on Calendly and paid again: the booking was paid once, so the new payment
    is given back as a duplicate and the booking waits for staff, never confirmed."""
    slot = paid_then_disputed(world)
    stripe_sandbox.dispute_close(stripe_dispute_id(), won=False)
    world.deliver()
    world.retry_waiting()
    assert (slot.booking.status, slot.payment.status) == ("disputed", "dispute_lost")

    moved = Slot(world.reschedule(slot), None)
    world.deliver()
    world.retry_waiting()
    successor = moved.booking
    assert (successor.status, successor.needs_review) == ("pending_payment", True)
    assert successor.review_reason == "rescheduled from a disputed booking"

    assert world.pay(moved).status_code == 303
    world.settle_everything()
    assert world.state(moved) == {
        "booking": "pending_payment",
        "payments": ["dispute_lost", "refunded"],
        "refunds": [(PRICE, "succeeded", False)],
    }
    [duplicate] = AuditEntry.objects.filter(action="payments.payment.duplicate")
    assert duplicate.data["why"] == "paid twice"
    assert world.dead_or_failed() == []
