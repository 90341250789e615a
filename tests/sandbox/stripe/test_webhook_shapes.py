"""Every webhook the sandbox sends is signed like Stripe's and shaped like Stripe's own
fixtures (tests/fixtures/stripe/: the envelope and each data.object)."""

import pytest

from payments import stripe_gateway
from tests.sandbox.stripe.helpers import (
    bring_due_work_forward,
    fixture,
    new_session,
    paid_session,
    pay,
    pay_by_debit,
)

pytestmark = pytest.mark.django_db(transaction=True)

OBJECT_FIXTURES = {
    "checkout.session": "checkout.session",
    "charge": "charge",
    "refund": "refund",
    "dispute": "dispute",
}


def _every_kind_of_event() -> None:
    paid = paid_session("bk_shapes_paid")
    stripe_gateway.create_refund(
        refund_ref="rf_shapes", payment_intent=paid.payment_intent_id, amount=1000
    )
    stripe_gateway.expire_checkout_session(new_session("bk_shapes_expire").id)
    pay(new_session("bk_shapes_dispute").url, "4000000000000259")
    pay_by_debit(new_session("bk_shapes_sepa_ok").url, "AT611904300234573201")
    pay_by_debit(new_session("bk_shapes_sepa_fail").url, "AT861904300235473202")
    bring_due_work_forward()


def test_every_event_verifies_and_has_stripes_shape(stripe_sandbox, stripe_webhooks, settings):
    _every_kind_of_event()

    events = stripe_webhooks.deliver()

    assert {event.type for event in events} == {
        "checkout.session.completed",
        "checkout.session.expired",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "charge.refunded",
        "charge.refund.updated",
        "charge.dispute.created",
    }
    envelope_keys = set(fixture("event"))
    for body in stripe_webhooks.bodies():
        assert set(body) == envelope_keys, body["type"]
        assert set(body["data"]) == {"object"}
        data_object = body["data"]["object"]
        expected = set(fixture(OBJECT_FIXTURES[data_object["object"]]))
        assert set(data_object) == expected, body["type"]
        assert body["api_version"] == stripe_gateway.API_VERSION
        assert body["livemode"] is False
        assert body["object"] == "event"


def test_a_charge_refunded_event_lists_its_refunds(stripe_sandbox, stripe_webhooks):
    paid = paid_session("bk_refunded_event")
    stripe_gateway.create_refund(refund_ref="rf_event", payment_intent=paid.payment_intent_id)

    stripe_webhooks.deliver()

    [refunded] = stripe_webhooks.of_type("charge.refunded")
    charge = refunded["data"]["object"]
    assert (charge["refunded"], charge["amount_refunded"]) == (True, 8000)
    [refund] = charge["refunds"]["data"]
    assert set(refund) == set(fixture("refund"))
    assert refunded["request"]["idempotency_key"] == "slotpay:refund:rf_event"
    [updated] = stripe_webhooks.of_type("charge.refund.updated")
    assert updated["data"]["object"]["id"] == refund["id"]


def test_a_wrong_secret_does_not_verify(stripe_sandbox, stripe_webhooks):
    import stripe

    paid_session("bk_wrong_secret")
    stripe_webhooks.deliver()
    posted = stripe_webhooks.receiver.received[0]

    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            posted["body"], posted["headers"]["Stripe-Signature"], "whsec_FAKEother"
        )


def test_events_are_sent_only_after_the_change_commits(stripe_sandbox, stripe_webhooks):
    from sandbox.models import Delivery

    session = new_session("bk_commit")
    pay(session.url)

    [queued] = Delivery.objects.filter(provider="stripe")
    assert queued.event_type == "checkout.session.completed"
    assert stripe_webhooks.receiver.received == []  # nothing is posted inside the request
    stripe_webhooks.deliver()
    assert len(stripe_webhooks.receiver.received) == 1
