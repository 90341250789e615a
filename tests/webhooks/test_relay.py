"""The relay: the endpoint stores, the worker publishes (webhooks/relay.py).

A broker that is down is a real Celery publish to a port where nothing listens
(``broker_down``); "the broker is back" runs tasks in-process, so a published event
is processed at once by the real pipeline. The worker integration tests
(test_worker_integration.py) run the relay in a real Celery worker.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from config.celery import app as celery_app
from tests.support.concurrency import together
from tests.webhooks.conftest import Sender
from tests.webhooks.test_processing import stored
from webhooks import relay, services
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db
Status = WebhookEvent.Status


def test_the_endpoint_stores_and_never_publishes_with_a_worker(
    stripe_sender: Sender, handlers, broker_down, caplog
) -> None:
    """With a worker (tasks not in-process) the 200 costs one INSERT: no publish is
    tried, so the broker being down changes nothing for the provider."""
    caplog.set_level(logging.INFO, logger="slotpay.webhooks")
    assert stripe_sender.post().json() == {"status": "stored"}
    event = WebhookEvent.objects.get()
    assert (event.status, event.enqueued_at) == (Status.RECEIVED, None)
    assert not [r for r in caplog.records if r.getMessage() == "webhooks.enqueue_failed"]
    assert list(relay.unrelayed()) == [event]
    assert handlers.calls == []


def test_the_relay_hands_back_what_the_broker_refused_then_publishes_it(
    stripe_sender: Sender, handlers, broker_down
) -> None:
    stripe_sender.post()
    with pytest.raises(relay.PublishFailed):
        relay.relay_once()
    event = WebhookEvent.objects.get()
    assert (event.status, event.enqueued_at) == (Status.RECEIVED, None)

    celery_app.conf.task_always_eager = True  # the broker is back (in-process here)
    before = timezone.now()
    assert relay.relay_once() == 1
    event.refresh_from_db()
    assert event.status == Status.PROCESSED
    assert before <= event.enqueued_at <= event.claimed_at  # noted before the task ran
    assert relay.relay_once() == 0
    assert len(handlers.calls) == 1


def test_the_relay_loop_logs_an_outage_once_and_its_end(
    stripe_sender: Sender, handlers, broker_down, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="slotpay.webhooks")
    stripe_sender.post()
    loop = relay.Relay()
    waits = [loop.step(0.1) for _ in range(5)]
    assert waits == [0.5, 1.0, 2.0, 4.0, 5.0]  # growing pauses, capped
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("webhooks.relay_failed") == 1

    # Another worker's relay took the row: finding nothing to publish is no recovery.
    taken = WebhookEvent.objects.update(enqueued_at=timezone.now())
    assert (taken, loop.step(0.1)) == (1, 5.0)
    assert "webhooks.relay_recovered" not in [r.getMessage() for r in caplog.records]

    WebhookEvent.objects.update(enqueued_at=None)  # handed back
    celery_app.conf.task_always_eager = True  # the broker is back
    assert loop.step(0.1) == 0.1
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("webhooks.relay_failed") == 1
    assert messages.count("webhooks.relay_recovered") == 1
    assert WebhookEvent.objects.get().status == Status.PROCESSED


def test_a_full_batch_is_followed_at_once_by_the_next(handlers) -> None:
    for _ in range(3):
        stored()
    with override_settings(WEBHOOK_RELAY_INTERVAL_SECONDS=0.1):
        assert relay.relay_once(limit=2) == 2
        assert relay.relay_once(limit=2) == 1
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {Status.PROCESSED}


def test_what_the_relay_missed_is_still_swept(handlers) -> None:
    """No relay running (a worker without one, WEBHOOK_RELAY_ENABLED=false): the
    sweeper publishes a stored row once it has waited WEBHOOK_REQUEUE_AFTER_SECONDS."""
    long_ago = timezone.now() - timedelta(minutes=5)
    event = stored(received_at=long_ago, next_attempt_at=long_ago)
    assert services.events_sweep() == 1
    event.refresh_from_db()
    assert event.status == Status.PROCESSED


def test_the_relay_does_not_start_with_in_process_tasks() -> None:
    relay.start()
    assert not any(loop.is_alive() for loop in relay._running)


@pytest.mark.connections
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_relays_of_several_workers_never_publish_the_same_row(handlers) -> None:
    events = [stored() for _ in range(30)]

    def drain(_: int) -> int:
        published = 0
        while sent := relay.relay_once(limit=3):
            published += sent
        return published

    results = together(4, drain)
    assert sum(results) == len(events), results
    assert sorted(call.pk for call in handlers.calls) == sorted(event.pk for event in events)
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {Status.PROCESSED}
