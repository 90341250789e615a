"""SEPA Direct Debit: completed unpaid now, succeeded or failed a few seconds later."""

import pytest

from payments import stripe_gateway
from tests.sandbox.stripe.helpers import bring_due_work_forward, new_session, pay_by_debit

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_debit_that_succeeds_later(stripe_sandbox, stripe_webhooks):
    session = new_session("bk_sepa_ok")

    response = pay_by_debit(session.url, "AT61 1904 3002 3457 3201")

    assert response.status_code == 303
    now = stripe_gateway.retrieve_checkout_session(session.id)
    assert (now.status, now.payment_status) == ("complete", "unpaid")
    assert stripe_gateway.retrieve_payment_intent(now.payment_intent_id).status == "processing"
    stripe_webhooks.deliver()
    [completed] = stripe_webhooks.bodies()
    assert completed["type"] == "checkout.session.completed"
    assert completed["data"]["object"]["payment_status"] == "unpaid"

    bring_due_work_forward()
    stripe_webhooks.deliver()

    later = stripe_webhooks.bodies()[1]
    assert later["type"] == "checkout.session.async_payment_succeeded"
    assert later["data"]["object"]["payment_status"] == "paid"
    assert stripe_gateway.retrieve_checkout_session(session.id).payment_status == "paid"
    intent = stripe_gateway.retrieve_payment_intent(now.payment_intent_id)
    assert intent.status == "succeeded"
    assert stripe_gateway.retrieve_charge(intent.latest_charge_id).last4 == "3201"


def test_a_debit_that_fails_later(stripe_sandbox, stripe_webhooks):
    session = new_session("bk_sepa_fail")
    pay_by_debit(session.url, "AT861904300235473202")

    bring_due_work_forward()
    stripe_webhooks.deliver()

    assert [e.type for e in stripe_webhooks.events()] == [
        "checkout.session.completed",
        "checkout.session.async_payment_failed",
    ]
    failed = stripe_gateway.retrieve_checkout_session(session.id)
    assert failed.payment_status == "unpaid"
    intent = stripe_gateway.retrieve_payment_intent(failed.payment_intent_id)
    assert intent.status == "requires_payment_method"


def test_debits_are_offered_only_in_euros(stripe_sandbox):
    session = new_session("bk_sepa_usd", currency="usd")

    response = pay_by_debit(session.url, "AT611904300234573201")

    assert response.status_code == 402
    assert b"SEPA Direct Debit is not accepted" in response.content
    assert b'value="sepa_debit"' not in response.content
    assert stripe_gateway.retrieve_checkout_session(session.id).status == "open"
