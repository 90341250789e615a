"""Every Stripe call is logged by operation and key label, never with the key."""

import logging

import pytest

from config import outgoing
from payments import stripe_gateway
from tests.sandbox.stripe.helpers import new_session

pytestmark = pytest.mark.django_db(transaction=True)


def test_calls_are_logged_with_the_key_label_only(stripe_sandbox, settings, caplog):
    caplog.set_level(logging.INFO, logger="slotpay.outgoing")
    before = outgoing.calls("stripe", "checkout.sessions.create")

    session = new_session("bk_log")
    with pytest.raises(stripe_gateway.NotFound):
        stripe_gateway.retrieve_checkout_session("cs_test_missing")

    records = [r for r in caplog.records if r.name == "slotpay.outgoing"]
    assert [(r.operation, r.status) for r in records] == [
        ("checkout.sessions.create", 200),
        ("checkout.sessions.retrieve", 404),
    ]
    label = outgoing.key_label(settings.STRIPE_API_KEY)
    assert all(r.key == label and r.key.startswith("sk_test:") for r in records)
    assert settings.STRIPE_API_KEY not in caplog.text
    for record in caplog.records:
        assert settings.STRIPE_API_KEY not in str(record.__dict__)
    assert outgoing.calls("stripe", "checkout.sessions.create") == before + 1
    assert session.id
