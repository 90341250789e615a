"""The hourly verification reads only what is new since the last one, and still
catches an edit after that point, or one to the entry it stopped at."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from audit import Category, record
from audit.models import AuditEntry, AuditVerifiedPoint
from audit.services import verify_chain
from audit.tasks import verify_chain as verify_chain_task
from tests.audit.tamper import execute, trigger_disabled


def _payments(count: int, start: int = 0) -> list[AuditEntry]:
    return [
        record(
            "payments.payment.paid",
            category=Category.TRANSACTION,
            actor="payments.checkout",
            target=("payments.payment", number),
            data={"amount": 8000},
            personal_data={"email": f"client{number}@example.org"},
        )
        for number in range(start, start + count)
    ]


def _streams(report) -> dict[str, tuple[str, int]]:
    return {stream.stream: (stream.since, stream.entries) for stream in report.streams}


@pytest.fixture
def verified(db) -> list[AuditEntry]:
    entries = _payments(20)
    assert verify_chain().ok  # full: from genesis, and remembered
    return entries


def test_a_run_reads_only_the_entries_since_the_last(verified):
    _payments(3, start=20)

    report = verify_chain(full=False)

    assert report.ok, report.reason
    assert report.entries == 3
    assert _streams(report) == {
        "transaction": ("verified point at 20", 3),
        "security": ("genesis", 0),
    }
    point = AuditVerifiedPoint.objects.get(stream="transaction")
    assert point.position == 23
    assert verify_chain(full=False).entries == 0


def test_the_hourly_task_and_audit_verify_are_incremental_unless_full(verified, capsys):
    _payments(2, start=20)

    assert verify_chain_task.delay().get()["entries"] == 2
    call_command("audit_verify")
    call_command("audit_verify", "--full")

    out = capsys.readouterr().out.splitlines()
    assert "transaction: from verified point at 22, 0 entries, ok" in out
    assert "transaction: from genesis, 22 entries, ok" in out


def test_the_first_run_starts_at_genesis(db):
    _payments(4)

    report = verify_chain(full=False)

    assert _streams(report)["transaction"] == ("genesis", 4)


@pytest.mark.postgres
def test_an_edit_after_the_last_verified_point_is_caught(verified):
    # Edited while queued: integration chains the digest written with it, not the edit.
    new = _payments(3, start=20)
    with trigger_disabled():
        execute("UPDATE audit_auditentry SET data = '{}' WHERE id = %s", [new[1].pk])

    report = verify_chain(full=False)

    assert report.entries == 2
    assert report.broken_at.pk == new[1].pk
    assert "entry_hash does not match" in report.reason
    with pytest.raises(CommandError, match=f"sequence={report.broken_at.sequence} "):
        call_command("audit_verify")


@pytest.mark.postgres
def test_an_edit_of_the_last_verified_entry_is_caught(verified):
    last = verified[-1]
    with trigger_disabled():
        execute("UPDATE audit_auditentry SET entry_hash = %s WHERE id = %s", ["e" * 64, last.pk])

    report = verify_chain(full=False)

    assert report.broken_at.pk == last.pk
    assert "entry_hash is not the one verified on" in report.reason


@pytest.mark.postgres
def test_an_edit_before_the_last_verified_point_needs_the_full_run(verified):
    # The price of reading only what is new; the daily checkpoint and --full catch it.
    with trigger_disabled():
        execute("UPDATE audit_auditentry SET data = '{}' WHERE id = %s", [verified[3].pk])

    assert verify_chain(full=False).ok
    report = verify_chain(full=True)
    assert report.broken_at.pk == verified[3].pk


def test_a_deletion_before_the_last_verified_point_is_counted(verified):
    # An edit behind the verified point waits for the full run; a deletion does not:
    # the hourly run counts what it verified before.
    with trigger_disabled():
        execute("DELETE FROM audit_auditentry WHERE id = %s", [verified[5].pk])

    report = verify_chain(full=False)
    assert not report.ok
    assert "1 entries of the transaction stream between positions 1 and" in report.reason


def test_a_deletion_at_the_start_with_no_purge_on_record_is_caught(verified):
    with trigger_disabled():
        execute("DELETE FROM audit_auditentry WHERE id = %s", [verified[0].pk])

    report = verify_chain(full=False)
    assert not report.ok
    assert "no purge of an expired segment accounts for them" in report.reason


@pytest.mark.postgres
def test_a_redaction_nobody_recorded_is_caught_in_an_entry_verified_long_ago(verified):
    execute(
        "UPDATE audit_auditentry SET personal_data = NULL, personal_data_redacted_at = now() "
        "WHERE id = %s",
        [verified[2].pk],
    )

    report = verify_chain(full=False)

    assert report.broken_at.pk == verified[2].pk
    assert "a redaction nobody recorded" in report.reason


@pytest.mark.postgres
def test_personal_data_removed_without_a_stamp_is_caught_incrementally(verified):
    with trigger_disabled():
        execute("UPDATE audit_auditentry SET personal_data = NULL WHERE id = %s", [verified[4].pk])

    report = verify_chain(full=False)

    assert report.broken_at.pk == verified[4].pk
    assert "personal data is missing but was never redacted" in report.reason
