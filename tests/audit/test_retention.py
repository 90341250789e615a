"""Retention of the audit log: whole expired segments go, oldest first, through the one
database function allowed to delete; what survives still verifies from the checkpoint
that closed the last purged segment; a purge stopped halfway verifies and resumes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import time_machine
from django.core.management import CommandError, call_command

from audit import purges
from audit.models import AuditCheckpoint, AuditEntry, Stream
from audit.retention import (
    SECURITY_EVENT_COUNTS,
    SECURITY_SEGMENTS,
    TRANSACTION_SEGMENTS,
    segments_purge,
)
from audit.services import PURGE_STARTED_ACTION, PURGED_ACTION, verify_chain
from tests.audit.aged_log import NOW, AgedLog, build
from tests.audit.tamper import execute, trigger_disabled

HOLD = "tests.open dispute"
HELD_TARGET = ("payments.payment", "42")


@pytest.fixture
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def log(db, clock) -> AgedLog:
    return build()


def _full_verify_message() -> str:
    with pytest.raises(CommandError) as raised:
        call_command("audit_verify", "--full")
    return str(raised.value)


def test_the_rules_are_registered_with_their_periods():
    by_name = {rule.name: rule for rule in purges.rules()}

    assert by_name["audit.security_segments"] is SECURITY_SEGMENTS
    assert by_name["audit.transaction_segments"] is TRANSACTION_SEGMENTS
    assert by_name["audit.security_event_counts"] is SECURITY_EVENT_COUNTS
    assert SECURITY_SEGMENTS.period == timedelta(days=365)
    assert TRANSACTION_SEGMENTS.period == timedelta(days=7 * 365)
    assert SECURITY_EVENT_COUNTS.period == timedelta(days=90)


def test_a_year_old_security_segment_goes_and_a_transaction_one_as_old_stays(log):
    transaction_before = log.positions(Stream.TRANSACTION)

    assert segments_purge(Stream.SECURITY, now=NOW) == 4
    assert segments_purge(Stream.TRANSACTION, now=NOW) == 0

    # The newer segment, and what came after it, stay.
    assert log.positions(Stream.SECURITY) == [5, 6, 7, 8, 9]
    # Transaction entries only grew: by the purge's two records.
    assert log.positions(Stream.TRANSACTION) == [*transaction_before, 5, 6]
    started = AuditEntry.objects.get(action=PURGE_STARTED_ACTION)
    purged = AuditEntry.objects.get(action=PURGED_ACTION)
    assert started.stream == purged.stream == Stream.TRANSACTION
    assert started.data["from_position"] == 1
    assert purged.data == {"stream": "security", "through_position": 4, "rows": 4}
    assert AuditCheckpoint.objects.count() == 4  # checkpoints are never purged


def test_nothing_goes_a_second_before_the_year_is_up(db):
    build()
    sealed = AuditCheckpoint.objects.filter(stream=Stream.SECURITY).order_by("position")[0]
    almost = sealed.created_at + timedelta(days=365) - timedelta(seconds=1)

    assert SECURITY_SEGMENTS.forecast(almost).due == 0
    assert segments_purge(Stream.SECURITY, now=almost) == 0
    assert segments_purge(Stream.SECURITY, now=almost + timedelta(seconds=1)) == 4


def test_the_forecast_is_what_the_purge_then_does(log):
    forecast = SECURITY_SEGMENTS.forecast(NOW)

    assert forecast.due == 4
    assert forecast.held == {}
    assert forecast.next_due_at == log.recent_security.created_at + timedelta(days=365)
    assert TRANSACTION_SEGMENTS.forecast(NOW).due == 0
    assert TRANSACTION_SEGMENTS.forecast(NOW).next_due_at == (
        log.old_transaction.created_at + timedelta(days=7 * 365)
    )
    assert segments_purge(Stream.SECURITY, now=NOW) == forecast.due
    assert SECURITY_SEGMENTS.forecast(NOW).due == 0


def test_after_the_purge_the_chain_verifies_from_the_surviving_checkpoint(log, capsys):
    segments_purge(Stream.SECURITY, now=NOW)

    report = verify_chain()
    call_command("audit_verify", "--full")

    assert report.ok, report.reason
    out = capsys.readouterr().out
    assert "security: from checkpoint at 4, 5 entries, ok" in out
    assert "transaction: from genesis, 6 entries, ok" in out


@pytest.mark.postgres
def test_deleting_a_surviving_entry_is_caught(log):
    segments_purge(Stream.SECURITY, now=NOW)
    first, middle = (AuditEntry.objects.get(stream="security", position=p) for p in (5, 6))

    with trigger_disabled():
        execute("DELETE FROM audit_auditentry WHERE id = %s", [middle.pk])
    assert "position 6 of the security stream is missing (found 7)" in _full_verify_message()

    with trigger_disabled():
        execute("DELETE FROM audit_auditentry WHERE id = %s", [first.pk])
    message = _full_verify_message()
    assert "positions 1 to 6 of the security stream are gone and no purge of them" in message


@pytest.mark.postgres
def test_editing_a_surviving_entry_is_caught(log):
    segments_purge(Stream.SECURITY, now=NOW)
    survivor = AuditEntry.objects.get(stream="security", position=5)

    with trigger_disabled():
        execute("UPDATE audit_auditentry SET actor_id = 'someone' WHERE id = %s", [survivor.pk])

    message = _full_verify_message()
    assert f"sequence={survivor.sequence} security position=5" in message
    assert "entry_hash does not match" in message


@pytest.mark.postgres
def test_a_first_survivor_rewritten_to_link_elsewhere_is_caught(log):
    # Its link to the purged segment is all that ties it to the checkpoint.
    segments_purge(Stream.SECURITY, now=NOW)
    survivor = AuditEntry.objects.get(stream="security", position=5)

    with trigger_disabled():
        execute(
            "UPDATE audit_auditentry SET previous_hash = %s WHERE id = %s", ["a" * 64, survivor.pk]
        )

    assert "previous_hash does not match" in _full_verify_message()


@pytest.mark.postgres
def test_removing_the_end_is_caught(log):
    segments_purge(Stream.SECURITY, now=NOW)
    last = AuditEntry.objects.filter(stream="security").order_by("-position").first()

    with trigger_disabled():
        execute("DELETE FROM audit_auditentry WHERE id = %s", [last.pk])

    message = _full_verify_message()
    assert "the security stream's head is at position 9 but its last stored entry is at 8" in (
        message
    )


def test_a_purge_stopped_halfway_verifies_and_the_next_run_finishes_it(log):
    # One batch, then the process is killed.
    assert SECURITY_SEGMENTS.purge_batch(NOW, 3) == 3

    assert log.positions(Stream.SECURITY) == [4, 5, 6, 7, 8, 9]
    assert AuditEntry.objects.filter(action=PURGE_STARTED_ACTION).count() == 1
    assert not AuditEntry.objects.filter(action=PURGED_ACTION).exists()
    report = verify_chain()
    assert report.ok, report.reason
    security = next(stream for stream in report.streams if stream.stream == "security")
    assert security.since == "checkpoint at 4 (purge unfinished)"
    assert SECURITY_SEGMENTS.forecast(NOW).due == 1

    assert segments_purge(Stream.SECURITY, now=NOW, batch_size=3) == 1

    assert log.positions(Stream.SECURITY) == [5, 6, 7, 8, 9]
    assert AuditEntry.objects.filter(action=PURGE_STARTED_ACTION).count() == 1
    assert AuditEntry.objects.get(action=PURGED_ACTION).data["rows"] == 4
    assert verify_chain().ok


@pytest.mark.postgres
def test_survivors_of_a_stopped_purge_are_held_to_the_checkpoint_at_its_end(log):
    SECURITY_SEGMENTS.purge_batch(NOW, 2)
    survivor = AuditEntry.objects.get(stream="security", position=4)

    with trigger_disabled():
        execute("UPDATE audit_auditentry SET action = 'forged' WHERE id = %s", [survivor.pk])

    assert "entry_hash does not match" in _full_verify_message()


@pytest.mark.postgres
def test_a_gap_no_purge_started_is_caught(log):
    # Someone who can switch the trigger off removes the oldest entries, as a purge
    # would, but no purge was started.
    with trigger_disabled():
        execute("DELETE FROM audit_auditentry WHERE stream = 'security' AND position <= 2", [])

    assert "positions 1 to 2 of the security stream are gone and no purge of them was started" in (
        _full_verify_message()
    )


def test_a_held_target_postpones_its_segment_and_the_ones_after(db, clock, monkeypatch):
    monkeypatch.setitem(purges._holds, HOLD, [lambda: [HELD_TARGET]])
    build(held_target=HELD_TARGET)
    later = NOW + timedelta(days=365)  # the recent segment is due too by then

    forecast = SECURITY_SEGMENTS.forecast(later)

    assert (forecast.due, forecast.held) == (0, {HOLD: 8})
    assert segments_purge(Stream.SECURITY, now=later) == 0
    assert AuditEntry.objects.filter(stream="security", position=1).exists()

    monkeypatch.setitem(purges._holds, HOLD, [])
    assert SECURITY_SEGMENTS.forecast(later).due == 8
    with time_machine.travel(later, tick=False):  # the purge's record is written then
        assert segments_purge(Stream.SECURITY, now=later) == 8
        assert verify_chain().ok


def test_the_security_counts_rule_keeps_its_function(db, clock):
    from audit.models import SecurityEventCount
    from audit.retention import security_event_counts_purge

    hour = NOW.replace(minute=0)
    for days in (10, 91):
        SecurityEventCount.objects.create(
            action="accounts.login.failed",
            hour=hour - timedelta(days=days),
            count=1,
            last_seen_at=hour,
        )

    assert SECURITY_EVENT_COUNTS.forecast(NOW).due == 1
    assert security_event_counts_purge(now=NOW) == 1
    assert SecurityEventCount.objects.count() == 1
