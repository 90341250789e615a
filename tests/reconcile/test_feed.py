"""Feeding the inbox from reconciliation: stored as the delivery would have been
(same dedup key, same processing), marked as found by reconciliation, and once."""

from __future__ import annotations

import json

import pytest

from audit.models import AuditEntry
from payments import stripe_gateway
from tests.sandbox.stripe.helpers import new_session
from webhooks.models import WebhookEvent
from webhooks.schemas import SchemaError
from webhooks.services import event_feed

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_event_is_fed_once_and_processed_like_a_delivery(stripe_sandbox: str) -> None:
    session = new_session("bk_feed")
    stripe_gateway.expire_checkout_session(session.id)
    event = stripe_gateway.list_events().events[0]

    first = event_feed(provider="stripe", data=event.body)
    second = event_feed(provider="stripe", data=event.body)

    assert (first.outcome, second.outcome) == ("stored", "duplicate")
    row = WebhookEvent.objects.get()
    assert row == first.event == second.event
    assert (row.event_id, row.event_type, row.source) == (
        event.id,
        "checkout.session.expired",
        WebhookEvent.Source.RECONCILIATION,
    )
    # Processed by the handler at once (tasks run in-process here): not a booking of ours.
    assert row.status == WebhookEvent.Status.IGNORED
    assert json.loads(row.payload or "") == event.body
    accepted = AuditEntry.objects.get(action="webhooks.event.accepted")
    assert accepted.data["source"] == "reconciliation"


def test_only_what_the_endpoint_would_accept_is_fed(stripe_sandbox: str) -> None:
    with pytest.raises(SchemaError):
        event_feed(provider="stripe", data={"id": "evt_1", "object": "event"})
    with pytest.raises(ValueError, match="no webhook provider"):
        event_feed(provider="paypal", data={})
    assert not WebhookEvent.objects.exists()
