"""Erasing a customer at Stripe (data-subject requests)."""

import pytest

from payments import stripe_gateway
from sandbox.stripe_sandbox.models import StripeObject
from tests.sandbox.stripe.helpers import paid_session

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_customer_is_deleted_once(stripe_sandbox):
    session = paid_session("bk_erase")

    assert stripe_gateway.delete_customer(session.customer_id) is True
    assert stripe_gateway.delete_customer(session.customer_id) is True  # the retry replays

    stored = StripeObject.objects.get(id=session.customer_id).data
    assert stored == {"id": session.customer_id, "object": "customer", "deleted": True}


def test_deleting_a_missing_customer_reports_it_gone(stripe_sandbox):
    assert stripe_gateway.delete_customer("cus_doesnotexist") is False
