"""Sandbox webhooks leave after the transaction, signed per attempt, and are retried."""

import hashlib
import hmac
import json
import threading
from datetime import timedelta

import pytest
import stripe
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from sandbox import delivery
from sandbox.models import Delivery

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "whsec_FAKE-sandbox-secret"  # pragma: allowlist secret


def _enqueue(url: str, provider: str = "stripe", **extra) -> Delivery:
    return delivery.enqueue(
        provider=provider,
        event_type="checkout.session.completed",
        url=url,
        payload={"id": "evt_1", "object": "event", "type": "checkout.session.completed"},
        secret=SECRET,
        event_id="evt_1",
        **extra,
    )


def _deliver_from_another_connection() -> int:
    """What the dispatcher thread (its own database connection) would attempt now."""
    attempted = []

    def run() -> None:
        try:
            attempted.append(delivery.deliver_due())
        finally:
            connection.close()

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=30)
    return attempted[0]


@pytest.mark.postgres
def test_nothing_is_sent_before_the_transaction_commits(webhook_receiver):
    with transaction.atomic():
        _enqueue(webhook_receiver.url)
        assert _deliver_from_another_connection() == 0
        assert webhook_receiver.received == []
    assert _deliver_from_another_connection() == 1
    assert len(webhook_receiver.received) == 1


def test_a_stripe_delivery_verifies_with_the_stripe_library(webhook_receiver):
    _enqueue(webhook_receiver.url)
    delivery.deliver_due()

    posted = webhook_receiver.received[0]
    event = stripe.Webhook.construct_event(
        posted["body"], posted["headers"]["Stripe-Signature"], SECRET
    )
    assert event.id == "evt_1"
    assert posted["headers"]["Content-Type"] == "application/json; charset=utf-8"


def test_a_calendly_delivery_carries_calendlys_signature(webhook_receiver):
    _enqueue(webhook_receiver.url, provider="calendly")
    delivery.deliver_due()

    posted = webhook_receiver.received[0]
    parts = dict(
        p.split("=", 1) for p in posted["headers"]["Calendly-Webhook-Signature"].split(",")
    )
    expected = hmac.new(
        SECRET.encode(), f"{parts['t']}.".encode() + posted["body"], hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)


@pytest.mark.parametrize("failure", [500, 302, 410])
def test_a_failed_attempt_is_recorded_and_retried_later(webhook_receiver, failure):
    webhook_receiver.answers = [failure]
    item = _enqueue(webhook_receiver.url)

    delivery.deliver_due()
    item.refresh_from_db()
    assert item.status == Delivery.Status.PENDING
    assert item.next_attempt_at > timezone.now()
    assert delivery.deliver_due() == 0  # not due yet

    Delivery.objects.filter(pk=item.pk).update(next_attempt_at=timezone.now())
    delivery.deliver_due()
    item.refresh_from_db()
    assert item.status == Delivery.Status.DELIVERED
    assert [(a.number, a.status_code) for a in item.attempt_log.all()] == [
        (1, failure),
        (2, 200),
    ]
    first, second = (r["headers"]["Stripe-Signature"] for r in webhook_receiver.received)
    assert first != second or first.startswith("t=")  # each attempt signed afresh


@override_settings(SANDBOX_WEBHOOK_MAX_ATTEMPTS=3)
def test_delivery_gives_up_after_the_retry_budget(db):
    item = _enqueue("http://127.0.0.1:9/unreachable")

    for _ in range(3):
        Delivery.objects.filter(pk=item.pk).update(next_attempt_at=timezone.now())
        delivery.deliver_due()

    item.refresh_from_db()
    assert item.status == Delivery.Status.FAILED
    assert item.attempts == 3
    assert all("ConnectionError" in a.error for a in item.attempt_log.all())


def test_backoff_doubles_up_to_a_cap(settings):
    assert [delivery.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert delivery.backoff(30) == timedelta(seconds=settings.SANDBOX_WEBHOOK_BACKOFF_CAP)


def test_a_delayed_delivery_waits(webhook_receiver):
    _enqueue(webhook_receiver.url, delay=timedelta(minutes=5))

    assert delivery.deliver_due() == 0


@pytest.fixture
def dispatcher(settings):
    settings.SANDBOX_DELIVERY_THREAD = True
    yield
    delivery.stop_dispatcher()


def test_the_dispatcher_thread_delivers_after_commit(webhook_receiver, dispatcher):
    _enqueue(webhook_receiver.url)

    assert webhook_receiver.got_one.wait(timeout=10)
    assert json.loads(webhook_receiver.received[0]["body"])["id"] == "evt_1"


def test_the_deliveries_page_lists_every_attempt(client, webhook_receiver):
    webhook_receiver.answers = [503]
    item = _enqueue(webhook_receiver.url)
    delivery.deliver_due()

    listing = client.get("/sandbox/deliveries/")
    detail = client.get(f"/sandbox/deliveries/{item.pk}/")

    assert listing.status_code == 200
    assert b"checkout.session.completed" in listing.content
    assert b"1: 503" in listing.content
    assert b"503" in detail.content
    assert b"evt_1" in detail.content


def test_reset_removes_every_delivery(client, webhook_receiver):
    _enqueue(webhook_receiver.url)

    response = client.post("/sandbox/reset/")

    assert response.status_code == 302
    assert not Delivery.objects.exists()
