"""The Calendly sandbox's cast: a host in Berlin with a 30-minute event type that
redirects back to us, a subscription posting to the ``webhook_receiver``."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from sandbox import delivery
from sandbox.calendly_sandbox import services
from sandbox.calendly_sandbox.models import EventType, Invitee, WebhookSubscription

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "calendly"
SIGNING_KEY = "calendly-sandbox-test-signing-key-0123456789"
REDIRECT_URL = "https://slotpay.example/bookings/scheduled/?from=calendly"
QUESTION = "What should we discuss?"


def reference(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def verify_signature(header: str, body: bytes, key: str) -> bool:
    """Calendly's documented scheme, checked independently of the sandbox's signer."""
    parts = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(key.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(parts["v1"], expected.hexdigest())


@pytest.fixture
def event_type(db: None) -> EventType:
    return services.host_with_event_type_create(
        host_name="Ada Builder",
        host_email="ada@builder.example",
        host_slug="ada",
        host_timezone="Europe/Berlin",
        event_name="30 Minute Meeting",
        event_slug="30min",
        duration=30,
        redirect_url=REDIRECT_URL,
        question=QUESTION,
    )


@pytest.fixture
def subscription(event_type: EventType, webhook_receiver: Any) -> WebhookSubscription:
    return WebhookSubscription.objects.create(
        callback_url=webhook_receiver.url,
        events=list(services.WEBHOOK_EVENTS),
        scope=WebhookSubscription.Scope.ORGANIZATION,
        organization=event_type.host.organization,
        signing_key=SIGNING_KEY,
    )


def schedule_url(event_type: EventType) -> str:
    return f"/sandbox/calendly/{event_type.host.slug}/{event_type.slug}/"


def book(
    client: Client, event_type: EventType, start: datetime | None = None, **fields: str
) -> Any:
    start = start or services.open_slots(event_type)[0]
    data = {
        "start": start.isoformat(),
        "name": "Clara Client",
        "email": "clara@client.example",
        "timezone": "America/New_York",
        "answer": "Pricing,\nand the roadmap",
    } | fields
    return client.post(schedule_url(event_type), data)


def booked_invitee(client: Client, event_type: EventType, **fields: str) -> Invitee:
    response = book(client, event_type, **fields)
    assert response.status_code == 302, response.content[:500]
    return Invitee.objects.select_related("scheduled_event").latest("id")


def delivered(receiver: Any, key: str = SIGNING_KEY) -> list[dict[str, Any]]:
    """Deliver what is due, check every signature, return the bodies in order."""
    delivery.deliver_due()
    bodies = []
    for posted in receiver.received:
        assert verify_signature(
            posted["headers"]["Calendly-Webhook-Signature"], posted["body"], key
        )
        bodies.append(json.loads(posted["body"]))
    return bodies
