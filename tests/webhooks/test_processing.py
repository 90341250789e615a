"""Processing stored events: once, with retries, dead letters, the sweeper and replay."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from audit.models import AuditEntry
from config.outgoing import open_transactions
from tests.webhooks.conftest import Sender, calendly_event, stripe_event
from webhooks import retention, services
from webhooks.models import WebhookEvent
from webhooks.registry import IGNORED, RetryLater, registry

pytestmark = pytest.mark.django_db
Status = WebhookEvent.Status


def stored(**fields) -> WebhookEvent:
    """An event as the endpoint stores it, with ``fields`` overriding its state."""
    data = stripe_event()
    now = timezone.now()
    values = {
        "provider": "stripe",
        "event_id": data["id"],
        "event_type": data["type"],
        "payload": json.dumps(data),
        "received_at": now,
        "next_attempt_at": now,
        **fields,
    }
    return WebhookEvent.objects.create(**values)


def actions() -> list[str]:
    return list(
        AuditEntry.objects.filter(action__startswith="webhooks.event.")
        .order_by("sequence")
        .values_list("action", flat=True)
    )


def test_a_valid_event_is_processed_once_with_its_payload_encrypted(
    stripe_sender: Sender, handlers
) -> None:
    data = stripe_event()
    stripe_sender.post(data)
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts, event.last_error) == (Status.PROCESSED, 1, "")
    assert event.processed_at is not None
    [call] = handlers.calls
    assert (call.event_id, call.event_type, call.attempt) == (data["id"], data["type"], 1)
    assert call.data == data
    assert call.object_id == data["data"]["object"]["id"]
    assert actions() == ["webhooks.event.accepted", "webhooks.event.processed"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT payload FROM webhooks_webhookevent WHERE id = %s", [event.pk])
        stored = cursor.fetchone()[0]
    assert data["id"] not in stored
    assert stored.startswith("gAAAAA")
    signature = event.headers["Stripe-Signature"]
    assert signature.startswith("t=")
    assert signature.endswith("v1=[redacted]")


def test_calendly_facts_about_one_invitee_are_separate_events(
    calendly_sender: Sender, handlers
) -> None:
    created = calendly_event("invitee.created", invitee="AAAABBBBCCCCDDDD")
    canceled = calendly_event("invitee.canceled", invitee="AAAABBBBCCCCDDDD")
    for data in (created, canceled, created):
        assert calendly_sender.post(data).status_code == 200
    assert sorted(WebhookEvent.objects.values_list("event_id", flat=True)) == [
        "invitee.canceled:AAAABBBBCCCCDDDD",
        "invitee.created:AAAABBBBCCCCDDDD",
    ]
    assert len(handlers.calls) == 2


def test_calendly_legacy_shape_is_accepted(calendly_sender: Sender, handlers) -> None:
    from tests.webhooks.conftest import FIXTURES

    data = json.loads(
        (FIXTURES / "calendly" / "webhook.invitee.created.openapi-legacy.json").read_text()
    )
    assert calendly_sender.post(data).status_code == 200
    assert WebhookEvent.objects.get().status == Status.PROCESSED


def test_a_failing_handler_is_retried_then_dead_lettered(stripe_sender: Sender, handlers):
    handlers.behaviour = [RuntimeError("boom for owner@example.com")] * 3
    with override_settings(WEBHOOK_MAX_ATTEMPTS=3):
        stripe_sender.post()
        event = WebhookEvent.objects.get()
        assert (event.status, event.attempts) == (Status.FAILED, 1)
        assert "RuntimeError: boom" in event.last_error
        assert "owner@example.com" not in event.last_error  # scrubbed
        assert event.next_attempt_at > timezone.now() + timedelta(seconds=25)
        assert services.event_process(pk=event.pk) is None  # not due yet
        for expected in (Status.FAILED, Status.DEAD):
            WebhookEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now())
            assert services.event_process(pk=event.pk) == expected
    assert len(handlers.calls) == 3
    assert actions()[-1] == "webhooks.event.dead_lettered"
    assert services.event_process(pk=event.pk) is None  # a dead letter waits for a replay


def test_a_handler_runs_with_no_transaction_open_and_keeps_the_steps_it_committed(
    stripe_sender: Sender, handlers
) -> None:
    """The handler asks the provider with no transaction open (config.outgoing refuses
    a call inside one); each step it commits stays when a later one fails, and the
    retry runs it again (handlers are idempotent)."""
    import audit

    seen: list[list[str]] = []

    def step_then_fail(event):
        seen.append(open_transactions())
        with transaction.atomic():
            audit.record("test.step_done", category="transaction", actor="test")
        raise RuntimeError("after the first step")

    handlers.behaviour = [step_then_fail]
    stripe_sender.post()
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts) == (Status.FAILED, 1)
    assert seen == [[]]
    assert AuditEntry.objects.filter(action="test.step_done").count() == 1
    WebhookEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now())
    assert services.event_process(pk=event.pk) == Status.PROCESSED


def test_a_claim_taken_over_while_the_handler_ran_records_nothing(handlers) -> None:
    """A handler slower than the processing timeout: another worker claimed the event
    meanwhile, so the first one's outcome is not recorded over the second's."""
    event = stored()

    def taken_over(event_):
        WebhookEvent.objects.filter(pk=event_.pk).update(
            claimed_at=timezone.now() + timedelta(seconds=1)
        )

    handlers.behaviour = [taken_over]
    assert services.event_process(pk=event.pk) is None
    event.refresh_from_db()
    assert (event.status, event.attempts) == (Status.PROCESSING, 1)
    assert actions() == ["webhooks.event.accepted"]


def test_an_early_event_waits_for_its_prerequisite(calendly_sender: Sender, handlers) -> None:
    handlers.behaviour = [RetryLater("the booking is not recorded yet")]
    calendly_sender.post()
    event = WebhookEvent.objects.get()
    assert event.status == Status.WAITING
    assert event.last_error == "waiting: the booking is not recorded yet"
    WebhookEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now())
    assert services.event_process(pk=event.pk) == Status.PROCESSED
    assert len(handlers.calls) == 2


def test_a_handler_may_ignore_an_event(stripe_sender: Sender, handlers) -> None:
    handlers.behaviour = [lambda event: IGNORED]
    stripe_sender.post()
    assert WebhookEvent.objects.get().status == Status.IGNORED
    assert actions()[-1] == "webhooks.event.ignored"


def test_the_sweeper_processes_events_stored_while_the_queue_was_down(handlers) -> None:
    long_ago = timezone.now() - timedelta(minutes=5)
    old = stored(received_at=long_ago, next_attempt_at=long_ago)
    fresh = stored()
    assert services.events_sweep() == 1
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert (old.status, fresh.status) == (Status.PROCESSED, Status.RECEIVED)


def test_the_sweeper_takes_over_from_a_dead_worker_only_after_the_timeout(handlers) -> None:
    event = stored(
        status=Status.PROCESSING, claimed_at=timezone.now() - timedelta(seconds=30), attempts=1
    )
    assert services.events_sweep() == 0
    assert services.event_process(pk=event.pk) is None  # a live claim is left alone
    WebhookEvent.objects.filter(pk=event.pk).update(
        claimed_at=timezone.now() - timedelta(minutes=10)
    )
    assert services.events_sweep() == 1
    event.refresh_from_db()
    assert (event.status, event.attempts) == (Status.PROCESSED, 2)


@pytest.mark.connections
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_row_locked_longer_than_the_claims_wait_is_left_to_its_holder(handlers) -> None:
    """A stuck transaction holds the row: the worker waits CLAIM_LOCK_WAIT, not for it."""
    event = stored()
    thread, release = _lock_elsewhere(event.pk, hold=30)
    began = time.monotonic()
    try:
        assert services.event_process(pk=event.pk) is None
        waited = time.monotonic() - began
    finally:
        release.set()
        thread.join()
    wait = services.CLAIM_LOCK_WAIT.total_seconds()
    assert wait <= waited < wait + 3
    assert services.event_process(pk=event.pk) == Status.PROCESSED
    assert len(handlers.calls) == 1


@pytest.mark.connections
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_row_locked_for_a_moment_is_claimed_once_the_lock_goes(handlers) -> None:
    """A relay's scan or another claim holds the row a moment: the event is processed
    now, not left for the sweeper a minute later."""
    event = stored()
    thread, _ = _lock_elsewhere(event.pk, hold=0.3)
    try:
        assert services.event_process(pk=event.pk) == Status.PROCESSED
    finally:
        thread.join()
    assert len(handlers.calls) == 1


def _lock_elsewhere(pk: int, *, hold: float) -> tuple[threading.Thread, threading.Event]:
    """Another connection locks the row for ``hold`` seconds (or until released)."""
    locked, release = threading.Event(), threading.Event()

    def other_worker() -> None:
        with transaction.atomic():
            WebhookEvent.objects.select_for_update().get(pk=pk)
            locked.set()
            release.wait(hold)
        connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    assert locked.wait(10)
    return thread, release


def test_an_event_whose_handler_was_removed_is_ignored(stripe_sender: Sender, handlers):
    handlers.behaviour = [RuntimeError("first try fails")]
    stripe_sender.post()
    event = WebhookEvent.objects.get()
    registry.unregister("stripe", event.event_type)
    WebhookEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now())
    assert services.event_process(pk=event.pk) == Status.IGNORED


def test_replay_command_reprocesses_and_audits_who(stripe_sender: Sender, handlers, staff):
    handlers.behaviour = [RuntimeError("down")]
    with override_settings(WEBHOOK_MAX_ATTEMPTS=1):
        stripe_sender.post()
    event = WebhookEvent.objects.get()
    assert event.status == Status.DEAD
    call_command("webhooks_replay", "--status", "dead", "--by", staff.email, "--inline")
    event.refresh_from_db()
    assert (event.status, event.attempts) == (Status.PROCESSED, 1)
    replayed = AuditEntry.objects.get(action="webhooks.event.replayed")
    assert (replayed.actor_type, replayed.actor_id) == ("user", str(staff.pk))
    assert replayed.data["previous_status"] == "dead"
    assert len(handlers.calls) == 2


def test_replay_command_selects_by_time_and_queues(stripe_sender: Sender, handlers, capsys):
    stripe_sender.post()
    event = WebhookEvent.objects.get()
    since = (event.received_at - timedelta(minutes=1)).isoformat()
    call_command("webhooks_replay", "--since", since, "--provider", "stripe")
    assert "queued" in capsys.readouterr().out
    assert len(handlers.calls) == 2  # processed again (tasks run in-process in tests)
    entry = AuditEntry.objects.get(action="webhooks.event.replayed")
    assert entry.actor_type == "system"
    assert entry.actor_id.startswith("cli:")


def test_replay_command_refuses_vague_or_unknown_choices(staff) -> None:
    with pytest.raises(CommandError, match="Choose events"):
        call_command("webhooks_replay")
    with pytest.raises(CommandError, match="No staff user"):
        call_command("webhooks_replay", "--status", "dead", "--by", "nobody@example.com")
    with pytest.raises(CommandError, match="ISO 8601"):
        call_command("webhooks_replay", "--since", "yesterday")


def test_retention_purges_payloads_then_dedup_keys(stripe_sender: Sender, handlers) -> None:
    stripe_sender.post()
    event = WebhookEvent.objects.get()
    assert retention.purge()["payloads_purged"] == 0
    WebhookEvent.objects.filter(pk=event.pk).update(
        processed_at=timezone.now() - timedelta(hours=25)
    )
    assert retention.purge()["payloads_purged"] == 1
    event.refresh_from_db()
    assert event.payload is None
    assert event.payload_purged_at is not None
    # The dedup key still refuses a redelivery of the same event.
    assert stripe_sender.post(
        json.loads(json.dumps(stripe_event(event_id=event.event_id)))
    ).json() == {"status": "duplicate"}
    assert (
        services.events_replay(events=[event], actor="test", reason="t")[0][1]
        == "skipped: payload purged"
    )
    WebhookEvent.objects.filter(pk=event.pk).update(received_at=timezone.now() - timedelta(days=8))
    assert retention.purge()["events_deleted"] == 1
    assert AuditEntry.objects.filter(action="retention.purged").count() == 2


def test_failed_events_keep_their_payload(stripe_sender: Sender, handlers) -> None:
    handlers.behaviour = [RuntimeError("down")]
    stripe_sender.post()
    WebhookEvent.objects.update(received_at=timezone.now() - timedelta(days=10))
    retention.purge()
    assert WebhookEvent.objects.get().payload is not None


def test_only_the_dedup_constraint_counts_as_a_duplicate(handlers) -> None:
    from django.db import IntegrityError

    from webhooks.verification import Delivery

    data = stripe_event()
    first = Delivery("stripe", json.dumps(data), data, data["id"], data["type"])
    assert services.event_accept(delivery=first, headers={}) == "stored"
    assert services.event_accept(delivery=first, headers={}) == "duplicate"
    # A NOT NULL failure is a bug, not "a copy came first": it must not be answered 200.
    other = stripe_event()
    broken = Delivery("stripe", json.dumps(other), other, None, other["type"])  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        services.event_accept(delivery=broken, headers={})
    assert WebhookEvent.objects.count() == 1
