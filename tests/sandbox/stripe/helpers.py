"""Shared by the Stripe gateway and sandbox tests: the gateway pointed at a live sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import stripe
from django.test import Client
from django.utils import timezone

from payments import stripe_gateway
from sandbox import delivery
from sandbox.models import Delivery
from sandbox.stripe_sandbox.models import StripeObject

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "stripe"
SUCCESS_URL = "https://slotpay.example/bookings/paid/?session={CHECKOUT_SESSION_ID}"
CANCEL_URL = "https://slotpay.example/bookings/b_1/"
TERMS = "Free cancellation up to 24 hours before; 50 % refund until 2 hours before."


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def new_session(booking_ref: str = "bk_0001", **overrides: Any) -> stripe_gateway.CheckoutSession:
    arguments: dict[str, Any] = {
        "booking_ref": booking_ref,
        "item_name": "Portfolio review, 60 minutes",
        "amount": 8000,
        "currency": "eur",
        "success_url": SUCCESS_URL,
        "cancel_url": CANCEL_URL,
        "refund_terms": TERMS,
        "automatic_tax": False,
    }
    arguments.update(overrides)
    return stripe_gateway.create_checkout_session(**arguments)


def pay(session_url: str, number: str = "4242 4242 4242 4242", **fields: str) -> Any:
    """Submit the hosted page's card form (the Django test client skips CSRF)."""
    data = {
        "method": "card",
        "number": number,
        "expiry": "12 / 34",
        "cvc": "123",
        "name": "Casey Client",
        "email": "casey@example.com",
    }
    data.update(fields)
    return Client().post(urlparse(session_url).path, data)


def pay_by_debit(session_url: str, iban: str) -> Any:
    data = {"method": "sepa_debit", "iban": iban, "name": "Casey Client", "email": "c@example.com"}
    return Client().post(urlparse(session_url).path, data)


def paid_session(booking_ref: str = "bk_paid", **overrides: Any) -> stripe_gateway.CheckoutSession:
    session = new_session(booking_ref, **overrides)
    response = pay(session.url)
    assert response.status_code == 303, response.content
    return stripe_gateway.retrieve_checkout_session(session.id)


def bring_due_work_forward() -> None:
    """Time passes: delayed settlements, disputes and expiries come due now."""
    StripeObject.objects.filter(due_at__isnull=False).update(due_at=timezone.now())


class StripeWebhooks:
    """What the sandbox delivered to the receiver, verified as our endpoint will."""

    def __init__(self, receiver: Any, secret: str) -> None:
        self.receiver = receiver
        self.secret = secret

    def deliver(self) -> list[stripe.Event]:
        Delivery.objects.filter(status=Delivery.Status.PENDING).update(
            next_attempt_at=timezone.now()
        )
        delivery.deliver_due()
        return self.events()

    def events(self) -> list[stripe.Event]:
        return [
            stripe.Webhook.construct_event(
                posted["body"], posted["headers"]["Stripe-Signature"], self.secret
            )
            for posted in self.receiver.received
        ]

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(posted["body"]) for posted in self.receiver.received]

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [body for body in self.bodies() if body["type"] == event_type]


@pytest.fixture
def stripe_sandbox(live_server: Any, settings: Any) -> Iterator[str]:
    """stripe_gateway talks, over real HTTP, to the sandbox served by live_server."""
    settings.STRIPE_API_BASE = f"{live_server.url}/sandbox/stripe"
    yield settings.STRIPE_API_BASE
    # A kept-alive connection would keep a server thread, and its database
    # connection, busy past the test.
    stripe_gateway.close_clients()


@pytest.fixture
def stripe_webhooks(webhook_receiver: Any, settings: Any) -> StripeWebhooks:
    settings.SANDBOX_STRIPE_WEBHOOK_URL = webhook_receiver.url
    return StripeWebhooks(webhook_receiver, settings.STRIPE_WEBHOOK_SECRETS[0])
