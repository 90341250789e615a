"""Refunds: partial, full, and never more than was paid."""

import pytest

from payments import stripe_gateway
from tests.sandbox.stripe.helpers import paid_session

pytestmark = pytest.mark.django_db(transaction=True)


def _charge(session):
    intent = stripe_gateway.retrieve_payment_intent(session.payment_intent_id)
    return stripe_gateway.retrieve_charge(intent.latest_charge_id)


def test_a_partial_refund(stripe_sandbox):
    session = paid_session("bk_partial")

    refund = stripe_gateway.create_refund(
        refund_ref="rf_partial",
        payment_intent=session.payment_intent_id,
        amount=3000,
        reason="requested_by_customer",
    )

    assert refund.id.startswith("re_")
    assert (refund.amount, refund.currency, refund.status) == (3000, "eur", "succeeded")
    assert refund.reason == "requested_by_customer"
    assert refund.payment_intent_id == session.payment_intent_id
    charge = _charge(session)
    assert refund.charge_id == charge.id
    assert (charge.amount_refunded, charge.refunded) == (3000, False)
    assert stripe_gateway.retrieve_refund(refund.id) == refund


def test_a_full_refund_marks_the_charge_refunded(stripe_sandbox):
    session = paid_session("bk_full")

    refund = stripe_gateway.create_refund(
        refund_ref="rf_full", payment_intent=session.payment_intent_id
    )

    charge = _charge(session)
    assert refund.amount == 8000
    assert (charge.amount_refunded, charge.refunded) == (8000, True)


def test_partial_refunds_add_up_to_the_rest(stripe_sandbox):
    session = paid_session("bk_steps")
    charge = _charge(session)

    stripe_gateway.create_refund(refund_ref="rf_a", charge=charge.id, amount=5000)
    rest = stripe_gateway.create_refund(refund_ref="rf_b", charge=charge.id)

    assert rest.amount == 3000
    assert _charge(session).refunded is True


def test_refunding_more_than_remains_is_refused(stripe_sandbox):
    session = paid_session("bk_over")
    stripe_gateway.create_refund(
        refund_ref="rf_most", payment_intent=session.payment_intent_id, amount=7000
    )

    with pytest.raises(stripe_gateway.InvalidRequest) as refused:
        stripe_gateway.create_refund(
            refund_ref="rf_too_much", payment_intent=session.payment_intent_id, amount=1001
        )

    assert refused.value.code == "amount_too_large"
    assert refused.value.param == "amount"
    assert _charge(session).amount_refunded == 7000


def test_a_fully_refunded_charge_cannot_be_refunded_again(stripe_sandbox):
    session = paid_session("bk_twice")
    stripe_gateway.create_refund(refund_ref="rf_all", payment_intent=session.payment_intent_id)

    with pytest.raises(stripe_gateway.InvalidRequest) as refused:
        stripe_gateway.create_refund(refund_ref="rf_more", payment_intent=session.payment_intent_id)

    assert refused.value.code == "charge_already_refunded"


def test_a_refund_needs_exactly_one_target():
    with pytest.raises(ValueError, match="exactly one"):
        stripe_gateway.create_refund(refund_ref="rf_x")
    with pytest.raises(ValueError, match="exactly one"):
        stripe_gateway.create_refund(refund_ref="rf_x", payment_intent="pi_1", charge="ch_1")
