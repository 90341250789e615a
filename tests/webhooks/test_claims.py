"""Claims and the sweeper: the attempt limit holds even when a handler kills its worker,
and the sweeper re-queues what was lost, not what is only waiting in a backlog.

Time moves by rewriting timestamps in the database; a "killed worker" is a handler
raising a BaseException, which leaves the row ``processing`` exactly as SIGKILL does
(the claim committed, the handler's transaction never did). A broker that is down is
a real Celery publish to a port where nothing listens.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from audit.models import AuditEntry
from config.celery import app as celery_app
from tests.webhooks.conftest import Sender
from tests.webhooks.test_processing import actions, stored
from webhooks import services
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db
Status = WebhookEvent.Status


class WorkerKilled(BaseException):
    """Nothing in the pipeline catches it: the attempt ends as if the process died."""


def ago(**delta: float):
    return timezone.now() - timedelta(**delta)


# --- the attempt limit ------------------------------------------------------------------


@override_settings(WEBHOOK_MAX_ATTEMPTS=3)
def test_a_handler_that_kills_its_worker_is_dead_lettered_at_claim(handlers, caplog) -> None:
    handlers.behaviour = [WorkerKilled()] * 10
    event = stored()
    for attempt in (1, 2, 3):
        with pytest.raises(WorkerKilled):
            services.event_process(pk=event.pk)
        event.refresh_from_db()
        assert (event.status, event.attempts) == (Status.PROCESSING, attempt)
        # The worker is gone; its claim is older than the processing timeout.
        WebhookEvent.objects.filter(pk=event.pk).update(claimed_at=ago(minutes=10))

    caplog.set_level(logging.INFO, logger="slotpay.webhooks")
    assert services.events_sweep() == 1  # the takeover finds no attempt left

    event.refresh_from_db()
    assert (event.status, event.attempts) == (Status.DEAD, 3)
    assert "attempt 3 never finished" in event.last_error
    assert len(handlers.calls) == 3  # not run a fourth time
    assert actions() == ["webhooks.event.accepted", "webhooks.event.dead_lettered"]
    entry = AuditEntry.objects.get(action="webhooks.event.dead_lettered")
    assert entry.data["attempt"] == 3
    [dead] = [r for r in caplog.records if getattr(r, "outcome", None) == Status.DEAD]
    assert dead.levelno == logging.ERROR
    assert services.events_sweep() == 0  # a dead letter waits for a replay
    assert services.event_process(pk=event.pk) is None


@override_settings(WEBHOOK_MAX_ATTEMPTS=2)
def test_the_claim_of_an_attempt_beyond_the_limit_returns_dead(handlers) -> None:
    event = stored(status=Status.PROCESSING, attempts=2, claimed_at=ago(hours=1))
    assert services.event_process(pk=event.pk) == Status.DEAD
    assert handlers.calls == []


@override_settings(WEBHOOK_MAX_ATTEMPTS=2)
def test_the_last_allowed_attempt_still_runs(handlers) -> None:
    event = stored(status=Status.PROCESSING, attempts=1, claimed_at=ago(hours=1))
    assert services.event_process(pk=event.pk) == Status.PROCESSED
    event.refresh_from_db()
    assert event.attempts == 2
    assert len(handlers.calls) == 1


@override_settings(WEBHOOK_MAX_ATTEMPTS=1)
def test_a_replay_of_a_dead_letter_starts_counting_again(handlers, staff) -> None:
    event = stored(status=Status.DEAD, attempts=1, claimed_at=ago(hours=1))
    [(_, outcome)] = services.events_replay(
        events=[event], actor=staff, reason="fixed", inline=True
    )
    assert outcome == "replayed: processed"


# --- enqueued_at and the sweeper ----------------------------------------------------------


def test_publishing_the_task_records_enqueued_at(stripe_sender: Sender, handlers) -> None:
    before = timezone.now()
    stripe_sender.post()
    event = WebhookEvent.objects.get()
    assert event.status == Status.PROCESSED
    assert before <= event.enqueued_at <= event.claimed_at  # noted before the task ran


def test_a_failed_publish_leaves_no_enqueued_at_and_the_sweeper_queues_it(
    stripe_sender: Sender, handlers, broker_down
) -> None:
    assert stripe_sender.post().json() == {"status": "stored"}
    event = WebhookEvent.objects.get()
    assert (event.status, event.enqueued_at) == (Status.RECEIVED, None)

    WebhookEvent.objects.update(next_attempt_at=ago(minutes=2))
    assert services.events_sweep() == 0  # the broker is still down
    assert WebhookEvent.objects.get().enqueued_at is None
    celery_app.conf.task_always_eager = True  # the broker is back (in-process here)
    assert services.events_sweep() == 1
    assert WebhookEvent.objects.get().status == Status.PROCESSED


def test_the_sweeper_leaves_a_row_whose_task_waits_in_a_backlog(handlers) -> None:
    """Published five minutes ago and not claimed since: a backlog, not a loss."""
    event = stored(received_at=ago(minutes=5), next_attempt_at=ago(minutes=5))
    WebhookEvent.objects.filter(pk=event.pk).update(enqueued_at=ago(minutes=5))
    assert services.events_sweep() == 0
    assert handlers.calls == []


def test_the_sweeper_requeues_a_task_presumed_lost(handlers) -> None:
    """Unclaimed for longer than the processing timeout: Redis lost it, or a dead
    worker holds it until Redis's visibility timeout. Queued again, once per timeout."""
    event = stored(received_at=ago(minutes=7), next_attempt_at=ago(minutes=7))
    WebhookEvent.objects.filter(pk=event.pk).update(enqueued_at=ago(minutes=7))
    assert services.events_sweep() == 1
    event.refresh_from_db()
    assert event.status == Status.PROCESSED


def test_a_retry_published_with_a_countdown_waits_from_when_it_is_due(handlers) -> None:
    """Published at the failure, due 30 minutes later: its time in the queue counts
    from when it came due."""
    event = stored(
        status=Status.FAILED,
        attempts=1,
        claimed_at=ago(minutes=40, seconds=1),
        next_attempt_at=ago(minutes=5),
    )
    WebhookEvent.objects.filter(pk=event.pk).update(enqueued_at=ago(minutes=40))
    assert services.events_sweep() == 0
    WebhookEvent.objects.filter(pk=event.pk).update(next_attempt_at=ago(minutes=7))
    assert services.events_sweep() == 1


def test_a_task_already_claimed_no_longer_counts_as_queued(handlers) -> None:
    """Its attempt failed and no retry was published (the broker was down then)."""
    event = stored(
        status=Status.FAILED,
        attempts=1,
        claimed_at=ago(minutes=3),
        next_attempt_at=ago(minutes=2),
    )
    WebhookEvent.objects.filter(pk=event.pk).update(enqueued_at=ago(minutes=3, seconds=1))
    assert services.events_sweep() == 1
    event.refresh_from_db()
    assert (event.status, event.attempts) == (Status.PROCESSED, 2)


def test_a_takeover_already_queued_is_not_queued_again(handlers) -> None:
    """A dead worker's row is re-queued once; while that task waits, not again."""
    queued = stored(status=Status.PROCESSING, attempts=1, claimed_at=ago(minutes=10))
    WebhookEvent.objects.filter(pk=queued.pk).update(enqueued_at=ago(minutes=1))
    abandoned = stored(status=Status.PROCESSING, attempts=1, claimed_at=ago(minutes=10))
    WebhookEvent.objects.filter(pk=abandoned.pk).update(enqueued_at=ago(minutes=11))
    assert services.events_sweep() == 1
    queued.refresh_from_db()
    abandoned.refresh_from_db()
    assert (queued.status, abandoned.status) == (Status.PROCESSING, Status.PROCESSED)
