"""Axes records and the webhook inbox: each kind goes after its own time, not before."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt, AccessAttemptExpiration, AccessFailureLog, AccessLog
from django.test import override_settings

from audit import purges
from tests.retention.conftest import START
from tests.retention.helpers import forecast, purge, purged_entries
from webhooks.models import WebhookEvent, WebhookRejection

pytestmark = pytest.mark.django_db

Status = WebhookEvent.Status
ATTEMPT_FIELDS = {"get_data": "", "post_data": "", "failures_since_start": 3}


def _attempt(model, age: timedelta, number: int):
    row = model.objects.create(
        user_agent=f"agent {number}",
        ip_address="203.0.113.7",
        username=f"blind-index-{number}",
        http_accept="text/html",
        path_info="/accounts/login/",
        **(
            {"get_data": "", "post_data": "", "failures_since_start": 3}
            if model is AccessAttempt
            else {}
        ),
    )
    model.objects.filter(pk=row.pk).update(attempt_time=START - age)
    return row


def test_axes_records_go_after_90_days_whichever_table(clock) -> None:
    old = [
        _attempt(model, timedelta(days=90, seconds=1), number)
        for number, model in enumerate((AccessAttempt, AccessFailureLog, AccessLog))
    ]
    AccessAttemptExpiration.objects.create(access_attempt=old[0], expires_at=START)
    fresh = _attempt(AccessAttempt, timedelta(days=89), 9)

    assert forecast("accounts.axes") == purges.Forecast(
        due=3, held={}, next_due_at=START + timedelta(days=1)
    )
    assert purge("accounts.axes") == 3
    assert list(AccessAttempt.objects.all()) == [fresh]
    assert not AccessFailureLog.objects.exists()
    assert not AccessLog.objects.exists()
    assert not AccessAttemptExpiration.objects.exists()
    clock.move_to(START + timedelta(days=1))
    assert purge("accounts.axes") == 1


def _event(number: int, status: str, *, received_ago: timedelta, processed_ago=None):
    received = START - received_ago
    return WebhookEvent.objects.create(
        provider="stripe",
        event_id=f"evt_{number}",
        event_type="checkout.session.completed",
        status=status,
        received_at=received,
        next_attempt_at=received,
        processed_at=START - processed_ago if processed_ago is not None else None,
        payload='{"id": "evt"}',
        headers={"user-agent": "Stripe/1.0"},
    )


@override_settings(WEBHOOK_PAYLOAD_RETENTION_HOURS=24, WEBHOOK_DEDUP_RETENTION_DAYS=7)
def test_the_inbox_keeps_each_part_for_its_own_time(clock) -> None:
    hours, days = timedelta(hours=1), timedelta(days=1)
    blanked = _event(1, Status.PROCESSED, received_ago=25 * hours, processed_ago=24 * hours)
    ignored = _event(2, Status.IGNORED, received_ago=2 * days, processed_ago=2 * days)
    kept = _event(3, Status.PROCESSED, received_ago=24 * hours, processed_ago=23 * hours)
    deleted = _event(4, Status.PROCESSED, received_ago=7 * days, processed_ago=7 * days)
    failed = _event(5, Status.FAILED, received_ago=40 * days)
    dead = _event(6, Status.DEAD, received_ago=30 * days)
    young_dead = _event(7, Status.DEAD, received_ago=29 * days)
    WebhookRejection.objects.create(
        provider="stripe", reason="signature_mismatch", hour=START - 365 * days, last_seen_at=START
    )
    recent = WebhookRejection.objects.create(
        provider="stripe", reason="signature_mismatch", hour=START - 364 * days, last_seen_at=START
    )

    expected = {
        "webhooks.payloads": 3,  # blanked, ignored and (blanked before it goes) deleted
        "webhooks.dedup_keys": 1,
        "webhooks.dead_letters": 1,
        "webhooks.rejections": 1,
    }
    assert {name: forecast(name).due for name in expected} == expected
    assert forecast("webhooks.payloads").next_due_at == kept.processed_at + 24 * hours
    assert purges.run(rules=list(expected)) == expected

    remaining = {event.pk: event for event in WebhookEvent.objects.all()}
    assert set(remaining) == {blanked.pk, ignored.pk, kept.pk, failed.pk, young_dead.pk}
    for event in (blanked, ignored):
        assert remaining[event.pk].payload is None
        assert remaining[event.pk].headers == {}
        assert remaining[event.pk].payload_purged_at == START
    for event in (kept, failed, young_dead):
        assert remaining[event.pk].payload == '{"id": "evt"}'
    assert list(WebhookRejection.objects.all()) == [recent]
    assert dead.pk not in remaining
    assert deleted.pk not in remaining
    # One audit entry per rule, with its count.
    assert {name: [entry.data["rows"] for entry in purged_entries(name)] for name in expected} == {
        name: [rows] for name, rows in expected.items()
    }
