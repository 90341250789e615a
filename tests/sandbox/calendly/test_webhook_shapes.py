"""Every webhook the sandbox sends is signed as Calendly signs and shaped as its docs show."""

import hashlib
import hmac
import json

import pytest

from bookings import calendly
from sandbox import delivery
from sandbox.calendly_sandbox.models import WebhookSubscription

from .conftest import SIGNING_KEY, booked_invitee, delivered, reference

# Documented as optional in the full payload schema (payment, no_show, ...).
OPTIONAL_PAYLOAD_KEYS = set(reference("payload-only.invitee.full-schema.active.docs.json"))


def calendly_signature(key: str, body: bytes, timestamp: int) -> str:
    """Calendly's documented scheme, computed here independently of the sandbox."""
    digest = hmac.new(key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def _send(client, event_type, event):
    invitee = booked_invitee(client, event_type)
    if event == "invitee.canceled":
        client.post(f"/sandbox/calendly/cancellations/{invitee.uuid}/", {"reason": "Conflict"})
    elif event == "invitee_no_show.created":
        client.post(f"/sandbox/calendly/invitees/{invitee.uuid}/no-show/")


@pytest.mark.parametrize(
    "case",
    [
        ("invitee.created", "webhook.invitee.created.docs.json"),
        ("invitee.canceled", "webhook.invitee.canceled.docs.json"),
        ("invitee_no_show.created", "webhook.invitee_no_show.created.docs.json"),
    ],
)
def test_the_body_has_the_documented_keys(client, event_type, subscription, webhook_receiver, case):
    event, fixture = case
    subscription.events = [event]
    subscription.save()
    documented = reference(fixture)

    _send(client, event_type, event)
    (body,) = delivered(webhook_receiver)

    assert body["event"] == event
    assert set(body) == set(documented)
    payload, expected = body["payload"], documented["payload"]
    assert set(expected) <= set(payload)
    assert set(payload) - set(expected) <= OPTIONAL_PAYLOAD_KEYS
    event_keys, expected_event_keys = (
        set(payload["scheduled_event"]),
        set(expected["scheduled_event"]),
    )
    assert expected_event_keys <= event_keys
    # Calendly's Event schema adds ``cancellation`` once the event itself is canceled (the
    # docs example shows a group event that stays active).
    assert event_keys - expected_event_keys <= {"cancellation"}
    assert set(payload["tracking"]) == set(expected["tracking"])
    if "cancellation" in expected:
        assert set(payload["cancellation"]) == set(expected["cancellation"])
    assert body["created_by"] == payload["scheduled_event"]["event_memberships"][0]["user"]
    calendly.parse_invitee(payload)  # and our own parser reads it


def test_the_signature_is_calendlys_scheme(client, event_type, subscription, webhook_receiver):
    booked_invitee(client, event_type)
    delivery.deliver_due()

    posted = webhook_receiver.received[0]
    header = posted["headers"]["Calendly-Webhook-Signature"]
    timestamp = int(header.split(",")[0].removeprefix("t="))
    assert header == calendly_signature(SIGNING_KEY, posted["body"], timestamp)
    assert header != calendly_signature("another-key", posted["body"], timestamp)
    assert posted["headers"]["Content-Type"] == "application/json; charset=utf-8"


def test_only_matching_subscriptions_receive_it(client, event_type, webhook_receiver):
    host = event_type.host
    org = host.organization
    common = {"callback_url": webhook_receiver.url, "organization": org, "signing_key": "k"}
    other = host.__class__.objects.create(
        organization=org, name="Bo", email="bo@example.com", slug="bo", timezone="UTC"
    )
    WebhookSubscription.objects.create(scope="organization", events=["invitee.canceled"], **common)
    WebhookSubscription.objects.create(
        scope="user", host=other, events=["invitee.created"], **common
    )
    WebhookSubscription.objects.create(
        scope="organization", events=["invitee.created"], state="disabled", **common
    )
    WebhookSubscription.objects.create(
        scope="user", host=host, events=["invitee.created"], **common
    )

    booked_invitee(client, event_type)

    assert delivery.deliver_due() == 1
    assert len(webhook_receiver.received) == 1
    assert json.loads(webhook_receiver.received[0]["body"])["event"] == "invitee.created"


def test_nothing_is_sent_without_a_subscription(client, event_type, webhook_receiver):
    booked_invitee(client, event_type)

    assert delivery.deliver_due() == 0
