"""Stripe's 0259 card: the payment succeeds, a dispute follows a few seconds later."""

import pytest

from payments import stripe_gateway
from tests.sandbox.stripe.helpers import bring_due_work_forward, fixture, new_session, pay

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_dispute_follows_the_0259_card(stripe_sandbox, stripe_webhooks):
    session = new_session("bk_dispute")
    assert pay(session.url, "4000 0000 0000 0259").status_code == 303

    stripe_webhooks.deliver()
    assert [e.type for e in stripe_webhooks.events()] == ["checkout.session.completed"]

    bring_due_work_forward()
    stripe_webhooks.deliver()

    [dispute_event] = stripe_webhooks.of_type("charge.dispute.created")
    dispute = dispute_event["data"]["object"]
    intent = stripe_gateway.retrieve_payment_intent(
        stripe_gateway.retrieve_checkout_session(session.id).payment_intent_id
    )
    assert dispute["charge"] == intent.latest_charge_id
    assert dispute["amount"] == 8000
    assert set(dispute) == set(fixture("dispute"))
    assert stripe_gateway.retrieve_charge(intent.latest_charge_id).disputed is True
    with pytest.raises(stripe_gateway.InvalidRequest) as refused:
        stripe_gateway.create_refund(refund_ref="rf_disputed", payment_intent=intent.id)
    assert refused.value.code == "charge_disputed"


def test_no_dispute_before_its_time(stripe_sandbox, stripe_webhooks):
    session = new_session("bk_dispute_later")
    pay(session.url, "4000 0000 0000 0259")

    stripe_webhooks.deliver()

    assert stripe_webhooks.of_type("charge.dispute.created") == []
