"""Writes carry idempotency keys from our own ids: retries never charge or refund twice."""

import pytest

from payments import stripe_gateway
from sandbox.stripe_sandbox.models import IdempotencyRecord, StripeObject
from tests.sandbox.stripe.helpers import new_session, paid_session

pytestmark = pytest.mark.django_db(transaction=True)


def test_creating_the_same_bookings_session_again_returns_the_first(stripe_sandbox):
    first = new_session("bk_again")
    second = new_session("bk_again")

    assert second.id == first.id
    assert StripeObject.objects.filter(object="checkout.session").count() == 1
    assert IdempotencyRecord.objects.get().key == "slotpay:checkout:bk_again"


def test_the_same_booking_with_other_parameters_is_a_conflict(stripe_sandbox):
    new_session("bk_changed", amount=8000)

    with pytest.raises(stripe_gateway.IdempotencyConflict) as conflict:
        new_session("bk_changed", amount=9000)

    assert conflict.value.http_status == 400
    assert conflict.value.request_id.startswith("req_")
    assert "same parameters" in str(conflict.value)


def test_a_refund_retried_with_its_reference_is_made_once(stripe_sandbox):
    session = paid_session("bk_refund_twice")

    first = stripe_gateway.create_refund(
        refund_ref="rf_1", payment_intent=session.payment_intent_id, amount=1000
    )
    again = stripe_gateway.create_refund(
        refund_ref="rf_1", payment_intent=session.payment_intent_id, amount=1000
    )

    assert again == first
    charge = stripe_gateway.retrieve_charge(
        stripe_gateway.retrieve_payment_intent(session.payment_intent_id).latest_charge_id
    )
    assert charge.amount_refunded == 1000


def test_a_refund_reference_reused_for_another_amount_is_a_conflict(stripe_sandbox):
    session = paid_session("bk_refund_conflict")
    stripe_gateway.create_refund(
        refund_ref="rf_2", payment_intent=session.payment_intent_id, amount=1000
    )

    with pytest.raises(stripe_gateway.IdempotencyConflict):
        stripe_gateway.create_refund(
            refund_ref="rf_2", payment_intent=session.payment_intent_id, amount=2000
        )


def test_a_refused_request_may_be_retried_with_its_key(stripe_sandbox):
    """Stripe keeps only results of requests that ran; a validation failure is not kept."""
    session = paid_session("bk_refused_retry")

    with pytest.raises(stripe_gateway.InvalidRequest):
        stripe_gateway.create_refund(
            refund_ref="rf_3", payment_intent=session.payment_intent_id, amount=10**6
        )
    refund = stripe_gateway.create_refund(
        refund_ref="rf_3", payment_intent=session.payment_intent_id, amount=10**6 // 1000
    )
    assert refund.amount == 1000
