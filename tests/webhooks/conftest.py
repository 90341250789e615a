"""Signed deliveries, the way Stripe and Calendly sign them, and recording handlers.

Both providers sign ``"<t>." + body`` with HMAC-SHA256 and send ``t=<t>,v1=<hex>``;
``stripe.WebhookSignature.generate_signature_header`` is Stripe's own signer.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import stripe
from django.conf import settings
from django.test import Client

from webhooks.registry import Event, registry

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SIGNATURE_HEADERS = {"stripe": "Stripe-Signature", "calendly": "Calendly-Webhook-Signature"}


def sign(secret: str, body: str, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=timestamp)


def stripe_event(
    event_type: str = "checkout.session.completed", *, event_id: str | None = None
) -> dict[str, Any]:
    session = json.loads((FIXTURES / "stripe" / "checkout.session.json").read_text())
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": session},
    }


def calendly_event(
    event_type: str = "invitee.created", *, invitee: str | None = None
) -> dict[str, Any]:
    name = {
        "invitee.created": "webhook.invitee.created.docs.json",
        "invitee.canceled": "webhook.invitee.canceled.docs.json",
        "invitee_no_show.created": "webhook.invitee_no_show.created.docs.json",
    }.get(event_type, "webhook.routing_form_submission.created.docs.json")
    data = copy.deepcopy(json.loads((FIXTURES / "calendly" / name).read_text()))
    if invitee is not None or event_type.startswith("invitee"):
        event_uuid = uuid.uuid4().hex[:16].upper()
        data["payload"]["uri"] = (
            f"https://api.calendly.com/scheduled_events/{event_uuid}/invitees/"
            f"{invitee or uuid.uuid4().hex[:16].upper()}"
        )
    return data


def default_event(provider: str, event_type: str | None = None, **kwargs: Any) -> dict:
    if provider == "stripe":
        return stripe_event(event_type or "checkout.session.completed", **kwargs)
    return calendly_event(event_type or "invitee.created", **kwargs)


def current_secret(provider: str) -> str:
    if provider == "stripe":
        return settings.STRIPE_WEBHOOK_SECRETS[0]
    return settings.CALENDLY_WEBHOOK_SIGNING_KEYS[0]


def endpoint(provider: str, token: str | None = None) -> str:
    if token is None:
        token = (
            settings.STRIPE_WEBHOOK_PATH_TOKEN
            if provider == "stripe"
            else settings.CALENDLY_WEBHOOK_PATH_TOKEN
        )
    return f"/webhooks/{provider}/{token}/"


@dataclass
class Sender:
    """Posts deliveries through the real endpoint, running on-commit work (the queue)."""

    provider: str
    client: Client
    capture: Callable[..., Any]

    def post(
        self,
        data: dict | None = None,
        *,
        body: str | bytes | None = None,
        secret: str | None = None,
        timestamp: int | None = None,
        header: str | None = None,
        path: str | None = None,
        content_type: str = "application/json; charset=utf-8",
        **extra: Any,
    ) -> Any:
        if body is None:
            body = json.dumps(data if data is not None else default_event(self.provider))
        if header is None:
            text = body.decode() if isinstance(body, bytes) else body
            header = sign(secret or current_secret(self.provider), text, timestamp)
        headers = {f"HTTP_{SIGNATURE_HEADERS[self.provider].upper().replace('-', '_')}": header}
        with self.capture(execute=True):
            return self.client.post(
                path or endpoint(self.provider),
                data=body,
                content_type=content_type,
                **headers,
                **extra,
            )


@pytest.fixture(params=["stripe", "calendly"])
def provider(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def sender(
    provider: str, client: Client, django_capture_on_commit_callbacks: Any, db: None
) -> Sender:
    return Sender(provider, client, django_capture_on_commit_callbacks)


@pytest.fixture
def stripe_sender(client: Client, django_capture_on_commit_callbacks: Any, db: None) -> Sender:
    return Sender("stripe", client, django_capture_on_commit_callbacks)


@pytest.fixture
def calendly_sender(client: Client, django_capture_on_commit_callbacks: Any, db: None) -> Sender:
    return Sender("calendly", client, django_capture_on_commit_callbacks)


@dataclass
class Recorder:
    """Handlers registered through the real registry; they record what they were given.

    ``behaviour`` is a list of what the next calls do: an exception to raise, or a
    callable run with the event; when it is empty a call simply succeeds.
    """

    calls: list[Event] = field(default_factory=list)
    behaviour: list[Any] = field(default_factory=list)

    def __call__(self, event: Event) -> str | None:
        self.calls.append(event)
        if self.behaviour:
            step = self.behaviour.pop(0)
            if isinstance(step, BaseException):
                raise step
            return step(event)
        return None

    def ids(self) -> list[str]:
        return [event.event_id for event in self.calls]


HANDLED = {
    "stripe": ["checkout.session.completed", "charge.refunded"],
    "calendly": ["invitee.created", "invitee.canceled", "invitee_no_show.created"],
}


@pytest.fixture
def handlers() -> Iterator[Recorder]:
    """The pipeline's tests: the recorder stands in for the domain apps' handlers."""
    recorder = Recorder()
    with registry.replaced(
        {(name, event_type): recorder for name, types in HANDLED.items() for event_type in types}
    ):
        yield recorder
