"""A subscription's state, as Calendly keeps it: disabled by the operator or after
failed deliveries, then sent nothing, and shown ``disabled`` by the API."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from sandbox import delivery
from sandbox.calendly_sandbox import services
from sandbox.calendly_sandbox.models import EventType, WebhookSubscription
from sandbox.models import Delivery

from .conftest import booked_invitee

pytestmark = pytest.mark.django_db


def _api_state(client: Client, subscription: WebhookSubscription, settings: Any) -> dict[str, Any]:
    answer = client.get(
        f"/sandbox/calendly/api/webhook_subscriptions/{subscription.uuid}",
        headers={"authorization": f"Bearer {settings.CALENDLY_API_TOKEN}"},
    )
    assert answer.status_code == 200
    resource: dict[str, Any] = answer.json()["resource"]
    return resource


def _book_and_deliver(client: Client, event_type: EventType) -> None:
    booked_invitee(client, event_type)
    delivery.deliver_due()


def test_the_operator_disables_a_subscription_and_it_gets_nothing_more(
    client: Client,
    event_type: EventType,
    subscription: WebhookSubscription,
    webhook_receiver: Any,
    settings: Any,
) -> None:
    booked_invitee(client, event_type)  # its delivery is waiting when the hook goes off

    answer = client.post(f"/sandbox/calendly/subscriptions/{subscription.uuid}/disable/")
    _book_and_deliver(client, event_type)

    assert answer.status_code == 302
    assert _api_state(client, subscription, settings)["state"] == "disabled"
    assert webhook_receiver.received == []
    assert list(Delivery.objects.values_list("status", flat=True)) == [Delivery.Status.FAILED]


def test_the_dashboard_offers_disabling_to_its_operator_only(
    event_type: EventType, subscription: WebhookSubscription
) -> None:
    answer = Client().post(f"/sandbox/calendly/subscriptions/{subscription.uuid}/disable/")

    assert answer.status_code == 302  # to the sign-in page
    assert "/login/" in answer["Location"]
    subscription.refresh_from_db()
    assert subscription.state == WebhookSubscription.State.ACTIVE


def test_deliveries_given_up_in_a_row_disable_the_subscription(
    client: Client,
    event_type: EventType,
    subscription: WebhookSubscription,
    webhook_receiver: Any,
    settings: Any,
) -> None:
    settings.SANDBOX_WEBHOOK_MAX_ATTEMPTS = 1  # each failure gives the delivery up
    failures = services.DISABLE_AFTER_FAILED_DELIVERIES
    webhook_receiver.answers = [500] * failures

    for _ in range(failures - 1):
        _book_and_deliver(client, event_type)
    failing = _api_state(client, subscription, settings)
    _book_and_deliver(client, event_type)
    delivery.deliver_due()  # the next pass sees the last one given up
    disabled = _api_state(client, subscription, settings)
    _book_and_deliver(client, event_type)

    assert failing["state"] == "active"
    assert failing["retry_started_at"] is not None
    assert disabled["state"] == "disabled"
    assert disabled["retry_started_at"] == failing["retry_started_at"]
    assert len(webhook_receiver.received) == failures  # nothing after it was disabled


def test_one_delivery_that_gets_through_starts_the_count_again(
    client: Client,
    event_type: EventType,
    subscription: WebhookSubscription,
    webhook_receiver: Any,
    settings: Any,
) -> None:
    settings.SANDBOX_WEBHOOK_MAX_ATTEMPTS = 1
    failures = services.DISABLE_AFTER_FAILED_DELIVERIES
    webhook_receiver.answers = [500] * (failures - 1) + [200] + [500] * (failures - 1)

    for _ in range(2 * failures - 1):
        _book_and_deliver(client, event_type)
    delivery.deliver_due()

    state = _api_state(client, subscription, settings)
    assert state["state"] == "active"
    assert state["retry_started_at"] is not None  # failing again since the success
    webhook_receiver.answers = []
    _book_and_deliver(client, event_type)
    assert _api_state(client, subscription, settings)["retry_started_at"] is None
