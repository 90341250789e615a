"""refund_request: bounded by what remains, idempotent at Stripe, audited, retried.

Stripe here is the sandbox over real HTTP (stripe_sandbox), so the refunds are made
by the real stripe library against an API that refuses over-refunds.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from accounts.models import Builder
from audit.models import AuditEntry
from payments import stripe_gateway
from payments.models import Payment, Refund
from payments.services import (
    RefundRefused,
    refund_request,
    refund_retry_unfinished,
    refund_submit,
)
from tests.bookings.factories import make_booking, make_event_type
from tests.sandbox.stripe.helpers import paid_session

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def payment(stripe_sandbox, owner, stranger) -> Payment:
    event_type = make_event_type(Builder.objects.get(slug="olives-studio"))
    booking = make_booking(event_type, stranger)
    booking.confirm(actor="test")
    session = paid_session(f"bk_{booking.pk}")
    return Payment.objects.create(
        booking=booking,
        checkout_session_id=session.id,
        payment_intent_id=session.payment_intent_id,
        amount=8000,
        currency="eur",
        status=Payment.Status.PAID,
        paid_at=timezone.now(),
    )


def charge_of(payment: Payment) -> stripe_gateway.Charge:
    intent = stripe_gateway.retrieve_payment_intent(payment.payment_intent_id)
    return stripe_gateway.retrieve_charge(intent.latest_charge_id)


def test_a_partial_then_the_rest(payment: Payment, staff) -> None:
    first = refund_request(
        booking_id=payment.booking_id, amount=3000, reason="goodwill", actor=staff
    )
    assert first.status == Refund.Status.SUCCEEDED
    assert first.stripe_refund_id.startswith("re_")
    payment.refresh_from_db()
    assert (payment.status, payment.refundable()) == (Payment.Status.PARTIALLY_REFUNDED, 5000)
    refund_request(
        booking_id=payment.booking_id, amount=5000, reason="canceled", actor="bookings.cancel"
    )
    payment.refresh_from_db()
    assert payment.status == Payment.Status.REFUNDED
    assert charge_of(payment).amount_refunded == 8000
    actions = list(
        AuditEntry.objects.filter(action__startswith="payments.").values_list("action", flat=True)
    )
    assert actions.count("payments.refund.requested") == 2
    assert actions.count("payments.refund.succeeded") == 2
    assert "payments.payment.refunded" in actions


def test_more_than_remains_is_refused_before_stripe_is_called(payment: Payment) -> None:
    refund_request(booking_id=payment.booking_id, amount=6000, reason="r", actor="test")
    with pytest.raises(RefundRefused, match="Only 2000 EUR"):
        refund_request(booking_id=payment.booking_id, amount=2001, reason="r", actor="test")
    for bad in (0, -5, 10.5, True):
        with pytest.raises(RefundRefused, match="positive"):
            refund_request(booking_id=payment.booking_id, amount=bad, reason="r", actor="test")
    assert Refund.objects.count() == 1
    assert charge_of(payment).amount_refunded == 6000


def test_no_refundable_payment(payment: Payment) -> None:
    payment.set_status(Payment.Status.DISPUTED, actor="test")
    with pytest.raises(RefundRefused, match="no payment that can be refunded"):
        refund_request(booking_id=payment.booking_id, amount=100, reason="r", actor="test")


def test_a_retry_after_a_lost_answer_does_not_refund_twice(payment: Payment) -> None:
    refund = refund_request(booking_id=payment.booking_id, amount=2500, reason="r", actor="test")
    # As if our answer from Stripe was lost: the row is pending again, without the id.
    Refund.objects.filter(pk=refund.pk).update(status="pending", stripe_refund_id=None)
    again = refund_submit(refund=Refund.objects.get(pk=refund.pk), actor="payments.tasks")
    assert again.stripe_refund_id == refund.stripe_refund_id  # the same Stripe refund
    assert charge_of(payment).amount_refunded == 2500


def test_an_outage_leaves_the_refund_pending_for_a_retry(payment: Payment) -> None:
    with override_settings(STRIPE_API_BASE="http://127.0.0.1:9/sandbox/stripe"):
        stripe_gateway.close_clients()
        refund = refund_request(
            booking_id=payment.booking_id, amount=1000, reason="r", actor="test"
        )
    stripe_gateway.close_clients()
    assert refund.status == Refund.Status.PENDING
    assert refund.last_error
    assert AuditEntry.objects.filter(action="payments.refund.retry_scheduled").exists()
    # The pending amount is committed: it cannot be refunded a second time meanwhile.
    assert Payment.objects.get(pk=payment.pk).refundable() == 7000
    refund_submit(refund=refund, actor="payments.tasks")
    assert refund.status == Refund.Status.SUCCEEDED
    assert charge_of(payment).amount_refunded == 1000


def test_the_periodic_retry_sends_refunds_an_outage_left_pending(payment: Payment) -> None:
    with override_settings(STRIPE_API_BASE="http://127.0.0.1:9/sandbox/stripe"):
        stripe_gateway.close_clients()
        refund = refund_request(
            booking_id=payment.booking_id, amount=1500, reason="r", actor="test"
        )
    stripe_gateway.close_clients()
    assert refund_retry_unfinished() == 0  # too recent: left for the next run
    Refund.objects.filter(pk=refund.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
    assert refund_retry_unfinished() == 1
    refund.refresh_from_db()
    assert (refund.status, refund.attempts) == (Refund.Status.SUCCEEDED, 2)
    assert charge_of(payment).amount_refunded == 1500
    entry = AuditEntry.objects.filter(action="payments.refund.succeeded").get()
    assert entry.actor_id == "payments.tasks"


def test_a_refund_leased_by_a_sender_is_left_until_its_lease_ends(
    payment: Payment, settings
) -> None:
    """A sender that took the lease and died mid-call: another sends it only once
    REFUND_SUBMIT_LEASE_SECONDS have passed (the same idempotency key then)."""
    with override_settings(STRIPE_API_BASE="http://127.0.0.1:9/sandbox/stripe"):
        stripe_gateway.close_clients()
        refund = refund_request(
            booking_id=payment.booking_id, amount=1200, reason="r", actor="test"
        )
    stripe_gateway.close_clients()
    settings.REFUND_SUBMIT_LEASE_SECONDS = 30
    leased = Refund.objects.filter(pk=refund.pk)
    leased.update(submitting_at=timezone.now() - timedelta(seconds=20))

    assert refund_submit(refund=refund, actor="payments.tasks").status == Refund.Status.PENDING
    assert charge_of(payment).amount_refunded == 0

    leased.update(submitting_at=timezone.now() - timedelta(seconds=31))
    assert refund_submit(refund=refund, actor="payments.tasks").status == Refund.Status.SUCCEEDED
    assert charge_of(payment).amount_refunded == 1200


def test_inside_a_transaction_stripe_is_called_after_the_commit(payment: Payment, staff) -> None:
    from django.db import transaction

    from payments.services import reference_for

    decision = reference_for(f"test:{payment.pk}")
    with transaction.atomic():
        refund = refund_request(
            booking_id=payment.booking_id,
            amount=2000,
            reason="handler",
            actor=staff,
            stripe_reason="duplicate",
            reference=decision,
        )
        # No Stripe call while the transaction (and its locks) is open: the test
        # profile refuses one (config.outgoing), so refund_request made none.
        assert (refund.status, refund.stripe_refund_id) == (Refund.Status.PENDING, None)
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    [remote] = charge_of(payment).refunds
    assert (remote.id, remote.reason) == (refund.stripe_refund_id, "duplicate")
    # The same decision again finds the same refund: nothing more at Stripe.
    again = refund_request(
        booking_id=payment.booking_id,
        amount=2000,
        reason="handler",
        actor=staff,
        reference=decision,
    )
    assert again.pk == refund.pk
    assert len(charge_of(payment).refunds) == 1
