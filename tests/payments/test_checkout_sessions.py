"""Creating, reading and expiring Checkout Sessions through the gateway, over HTTP."""

from datetime import timedelta

import pytest
from django.utils import timezone

from payments import stripe_gateway
from tests.sandbox.stripe.helpers import CANCEL_URL, TERMS, new_session, paid_session

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_session_is_created_for_a_booking(stripe_sandbox):
    session = new_session("bk_42")

    assert session.id.startswith("cs_test_")
    assert session.url.startswith(stripe_sandbox.replace("/sandbox/stripe", ""))
    assert session.url.endswith(f"/sandbox/stripe/checkout/{session.id}/")
    assert (session.status, session.payment_status) == ("open", "unpaid")
    assert (session.amount_total, session.amount_tax, session.currency) == (8000, 0, "eur")
    assert session.metadata == {"booking": "bk_42"}
    assert session.payment_intent_id is None
    assert timezone.now() + timedelta(hours=23) < session.expires_at


def test_automatic_tax_is_added_on_top(stripe_sandbox):
    session = new_session("bk_tax", amount=8000, automatic_tax=True)

    assert session.amount_tax == 1520
    assert session.amount_total == 9520


def test_a_session_can_be_read_back(stripe_sandbox):
    created = new_session("bk_read", customer_email="casey@example.com")

    read = stripe_gateway.retrieve_checkout_session(created.id)

    assert read == created


def test_the_refund_terms_and_urls_reach_stripe(stripe_sandbox):
    from sandbox.stripe_sandbox.models import StripeObject

    session = new_session("bk_terms")

    stored = StripeObject.objects.get(id=session.id).data
    assert stored["custom_text"]["submit"] == {"message": TERMS}
    assert stored["cancel_url"] == CANCEL_URL
    assert stored["client_reference_id"] == "bk_terms"
    assert stored["mode"] == "payment"


def test_an_open_session_can_be_expired(stripe_sandbox):
    session = new_session("bk_expire")

    expired = stripe_gateway.expire_checkout_session(session.id)

    assert expired.status == "expired"
    assert stripe_gateway.retrieve_checkout_session(session.id).status == "expired"
    # Retrying the same expiry replays Stripe's first answer instead of failing.
    assert stripe_gateway.expire_checkout_session(session.id) == expired


def test_a_paid_session_cannot_be_expired(stripe_sandbox):
    session = paid_session("bk_paid_expire")

    with pytest.raises(stripe_gateway.InvalidRequest) as refused:
        stripe_gateway.expire_checkout_session(session.id)

    assert refused.value.code == "checkout_session_not_open"
    assert refused.value.http_status == 400
    assert refused.value.request_id.startswith("req_")


def test_an_expiry_time_is_passed_on(stripe_sandbox):
    expires_at = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)

    session = new_session("bk_soon", expires_at=expires_at)

    assert session.expires_at == expires_at


def test_an_expiry_outside_stripes_window_is_refused(stripe_sandbox):
    with pytest.raises(stripe_gateway.InvalidRequest) as refused:
        new_session("bk_too_soon", expires_at=timezone.now() + timedelta(minutes=5))

    assert refused.value.param == "expires_at"


def test_an_unknown_session_is_not_found(stripe_sandbox):
    with pytest.raises(stripe_gateway.NotFound) as missing:
        stripe_gateway.retrieve_checkout_session("cs_test_nonexistent")

    assert missing.value.code == "resource_missing"
    assert missing.value.http_status == 404


def test_amounts_are_validated_before_calling_stripe(stripe_sandbox):
    with pytest.raises(ValueError, match="minor units"):
        new_session("bk_bad", amount=80.0)
    with pytest.raises(ValueError, match="CHECKOUT_SESSION_ID"):
        new_session("bk_bad", success_url="https://slotpay.example/paid/")
