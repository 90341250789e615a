"""Which keys the sandbox takes: the configured test key, restricted keys within their
permissions; never a live key."""

import pytest

from payments import stripe_gateway
from sandbox.stripe_sandbox.models import RestrictedKey
from tests.sandbox.stripe.helpers import new_session, paid_session

pytestmark = pytest.mark.django_db(transaction=True)

PERMISSIONS = {
    "checkout_sessions": "write",
    "refunds": "write",
    "charges": "read",
    "payment_intents": "read",
    "customers": "write",
    "events": "read",
}


@pytest.fixture
def restricted_key(settings, stripe_sandbox):
    key = RestrictedKey.objects.create(
        name="checkout only",
        key="rk_test_FAKErestrictedcheckoutonly0001",
        permissions={"checkout_sessions": "write", "events": "read"},
    )
    settings.STRIPE_API_KEY = key.key
    return key


def test_a_restricted_key_may_do_what_it_grants(restricted_key):
    session = new_session("bk_rk")

    assert stripe_gateway.retrieve_checkout_session(session.id).id == session.id
    assert stripe_gateway.list_events().events == []


def test_a_restricted_key_is_refused_outside_its_permissions(restricted_key):
    with pytest.raises(stripe_gateway.PermissionDenied) as denied:
        stripe_gateway.create_refund(refund_ref="rf_rk", payment_intent="pi_whatever")

    assert denied.value.http_status == 403
    assert "refunds" in str(denied.value)
    assert restricted_key.key not in str(denied.value)


def test_read_permission_does_not_allow_writes(settings, stripe_sandbox):
    session = paid_session("bk_read_only")
    settings.STRIPE_API_KEY = RestrictedKey.objects.create(
        name="readers", key="rk_test_FAKEreadonly0002", permissions={"payment_intents": "read"}
    ).key

    assert stripe_gateway.retrieve_payment_intent(session.payment_intent_id).status == "succeeded"
    with pytest.raises(stripe_gateway.PermissionDenied):
        stripe_gateway.expire_checkout_session(session.id)


def test_the_production_key_set_is_enough_for_slotpay(settings, stripe_sandbox):
    settings.STRIPE_API_KEY = RestrictedKey.objects.create(
        name="slotpay", key="rk_test_FAKEslotpay0003", permissions=PERMISSIONS
    ).key
    session = paid_session("bk_rk_full")

    stripe_gateway.create_refund(refund_ref="rf_rk_full", payment_intent=session.payment_intent_id)
    assert stripe_gateway.delete_customer(session.customer_id) is True


def test_a_live_key_is_refused(settings, stripe_sandbox):
    # Built at runtime: no live-looking literal in the source.
    settings.STRIPE_API_KEY = "sk_" + "live_" + "FAKE" * 6  # pragma: allowlist secret

    with pytest.raises(stripe_gateway.AuthenticationFailed) as refused:
        new_session("bk_live")

    assert refused.value.http_status == 401
    assert "test keys only" in str(refused.value)
    assert settings.STRIPE_API_KEY not in str(refused.value)
