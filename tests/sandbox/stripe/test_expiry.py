"""Sessions past expires_at expire on their own, with checkout.session.expired."""

import pytest
from django.test import Client

from payments import stripe_gateway
from sandbox import delivery
from sandbox.stripe_sandbox.models import StripeObject
from tests.sandbox.stripe.helpers import new_session

pytestmark = pytest.mark.django_db(transaction=True)


def _overdue(session_id: str) -> None:
    stored = StripeObject.objects.get(id=session_id)
    stored.data["expires_at"] -= 25 * 3600
    stored.due_at = stored.due_at.replace(year=2000)
    stored.save()


def test_an_overdue_session_expires_on_the_next_tick(stripe_sandbox, stripe_webhooks):
    session = new_session("bk_overdue")
    _overdue(session.id)

    delivery.deliver_due()
    stripe_webhooks.deliver()

    [event] = stripe_webhooks.events()
    assert event.type == "checkout.session.expired"
    assert event.data.object.id == session.id
    assert event.request.id is None  # not caused by an API request
    assert stripe_gateway.retrieve_checkout_session(session.id).status == "expired"


def test_an_overdue_session_expires_when_read(stripe_sandbox, stripe_webhooks):
    session = new_session("bk_overdue_read")
    _overdue(session.id)

    assert stripe_gateway.retrieve_checkout_session(session.id).status == "expired"
    page = Client().get(f"/sandbox/stripe/checkout/{session.id}/")
    assert b"has expired" in page.content
    assert [e.type for e in stripe_webhooks.deliver()] == ["checkout.session.expired"]


def test_an_expiry_requested_through_the_api_names_its_request(stripe_sandbox, stripe_webhooks):
    session = new_session("bk_api_expiry")

    stripe_gateway.expire_checkout_session(session.id)

    [event] = stripe_webhooks.deliver()
    assert event.request.idempotency_key == f"slotpay:expire:{session.id}"
    assert event.request.id.startswith("req_")
