"""The inbox's watchdogs: dead letters waiting for a person, and a spike of refused
signatures. Each incident is one alert and one recovery message."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from core.alerts import open_alerts, run_watchdogs
from tests.webhooks.conftest import calendly_event, sign
from webhooks.models import WebhookEvent, WebhookRejection

from .conftest import ON_CALL, subjects

pytestmark = pytest.mark.django_db(transaction=True)

DEAD_LETTERS = ["webhooks.dead_letters"]
SIGNATURES = ["webhooks.signature_failures"]


def _dead(number: int, provider: str = "stripe") -> WebhookEvent:
    now = timezone.now()
    return WebhookEvent.objects.create(
        provider=provider,
        event_id=f"evt_dead_{number}",
        event_type="checkout.session.completed",
        status=WebhookEvent.Status.DEAD,
        attempts=8,
        received_at=now,
        next_attempt_at=now,
        payload="{}",
        last_error="KeyError: 'booking'",
    )


def test_dead_letters_are_one_alert_until_replayed_then_one_recovery() -> None:
    first = _dead(1)
    run_watchdogs(only=DEAD_LETTERS)
    _dead(2, provider="calendly")
    run_watchdogs(only=DEAD_LETTERS)  # more dead letters: the same incident

    assert subjects() == [
        "[Slotpay alert] 1 webhook event dead-lettered, not replayed (stripe: 1)."
    ]
    assert open_alerts() == ["webhooks.dead_letters"]

    # Replayed (the status a replay sets) and processed; the other one purged.
    WebhookEvent.objects.filter(pk=first.pk).update(status=WebhookEvent.Status.PROCESSED)
    WebhookEvent.objects.filter(event_id="evt_dead_2").update(payload=None)
    run_watchdogs(only=DEAD_LETTERS)
    run_watchdogs(only=DEAD_LETTERS)

    assert subjects()[1:] == [
        "[Slotpay recovered] 2 webhook events dead-lettered, not replayed (calendly: 1, stripe: 1)."
    ]
    assert open_alerts() == []


def test_no_dead_letters_no_alert() -> None:
    WebhookEvent.objects.create(
        provider="stripe",
        event_id="evt_ok",
        event_type="checkout.session.completed",
        status=WebhookEvent.Status.PROCESSED,
        received_at=timezone.now(),
        next_attempt_at=timezone.now(),
    )

    assert run_watchdogs(only=DEAD_LETTERS).raised == []


def _forged(client: Client, settings: Any, count: int) -> None:
    url = f"/webhooks/calendly/{settings.CALENDLY_WEBHOOK_PATH_TOKEN}/"
    body = json.dumps(calendly_event())
    for _ in range(count):
        answer = client.post(
            url,
            body,
            content_type="application/json",
            headers={"calendly-webhook-signature": sign("not-our-key", body, int(time.time()))},
        )
        assert answer.status_code == 400


def test_a_spike_of_refused_signatures_is_one_alert_then_one_recovery(
    client: Client, settings: Any
) -> None:
    settings.WEBHOOK_SIGNATURE_FAILURE_ALERT_THRESHOLD = 5
    _forged(client, settings, 5)
    quiet = run_watchdogs(only=SIGNATURES)
    _forged(client, settings, 2)
    spike = run_watchdogs(only=SIGNATURES)
    again = run_watchdogs(only=SIGNATURES)

    assert quiet.raised == []
    assert spike.raised == ["webhooks.signature_failures.calendly"]
    assert again.raised == []
    [alert] = [m for m in subjects() if "alert" in m]
    assert alert == (
        "[Slotpay alert] 7 Calendly webhook deliveries refused for their signature in the "
        "last hour (alert above 5)."
    )
    assert "signing secret" in " ".join(m.body for m in mail.outbox)

    # An hour and more later, nothing refused since.
    WebhookRejection.objects.update(
        hour=timezone.now() - timedelta(hours=2), last_seen_at=timezone.now() - timedelta(hours=2)
    )
    calm = run_watchdogs(only=SIGNATURES)

    assert calm.cleared == ["webhooks.signature_failures.calendly"]
    assert len(subjects()) == 2
    assert all(m.to == ON_CALL for m in mail.outbox)


def test_other_refusals_are_not_signature_failures(client: Client, settings: Any) -> None:
    settings.WEBHOOK_SIGNATURE_FAILURE_ALERT_THRESHOLD = 1
    url = f"/webhooks/calendly/{settings.CALENDLY_WEBHOOK_PATH_TOKEN}/"
    for _ in range(3):
        client.post(url, "{}", content_type="text/plain")

    assert WebhookRejection.objects.get().reason == "unsupported_content_type"
    assert run_watchdogs(only=SIGNATURES).raised == []
