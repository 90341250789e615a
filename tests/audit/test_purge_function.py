"""On PostgreSQL nothing but ``audit_purge_segment`` deletes audit entries, and it
deletes only what a checkpoint sealed and the stream's retention has expired."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import time_machine
from django.db import DatabaseError, connection, transaction

from audit.models import AuditCheckpoint, AuditEntry
from tests.audit.aged_log import NOW, AgedLog, build

pytestmark = pytest.mark.postgres


@pytest.fixture
def log(db) -> Iterator[AgedLog]:
    with time_machine.travel(NOW, tick=False):
        yield build()


def _purge(stream: str, through: int, now: datetime, limit: int = 100) -> int:
    # A savepoint, so that a refusal does not abort the test's transaction.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT audit_purge_segment(%s, %s, %s, %s)", [stream, through, now, limit])
        return int(cursor.fetchone()[0])


def _refused(sql: str, params: list[object], match: str) -> None:
    with (
        pytest.raises(DatabaseError, match=match),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, params)


def test_a_plain_delete_of_a_sealed_expired_entry_is_refused(log):
    entry = AuditEntry.objects.get(stream="security", position=1)

    _refused("DELETE FROM audit_auditentry WHERE id = %s", [entry.pk], "DELETE refused")
    with pytest.raises(DatabaseError, match="DELETE refused"), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).delete()

    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_a_delete_from_another_function_is_refused(log):
    # Only the purge function's own DELETE passes, not one in a look-alike.
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION pg_temp.audit_purge_segment_too() RETURNS void "
            "LANGUAGE plpgsql AS $$ BEGIN DELETE FROM audit_auditentry; END; $$"
        )
    _refused("SELECT pg_temp.audit_purge_segment_too()", [], "DELETE refused")


def test_the_function_deletes_the_oldest_of_a_sealed_expired_segment(log):
    assert _purge("security", 4, NOW, limit=3) == 3

    assert AgedLog.positions("security")[:2] == [4, 5]
    assert _purge("security", 4, NOW) == 1
    assert _purge("security", 4, NOW) == 0


def test_the_function_refuses_a_position_no_checkpoint_names(log):
    # 3 lies inside the sealed, expired segment, but no checkpoint closes there.
    _refused(
        "SELECT audit_purge_segment('security', 3, %s, 10)",
        [NOW],
        "no checkpoint of security closes at position 3",
    )
    # Nor can the unsealed end of the stream go.
    _refused(
        "SELECT audit_purge_segment('security', 9, %s, 10)",
        [NOW],
        "no checkpoint of security closes at position 9",
    )

    assert AgedLog.positions("security")[0] == 1


def test_the_function_refuses_an_unexpired_segment(log):
    _refused(
        "SELECT audit_purge_segment('security', 8, %s, 10)",
        [NOW],
        "the security segment through 8 is not expired",
    )
    # 400 days old: a year for security, not the seven years of transactions.
    through = log.old_transaction.position
    _refused(
        "SELECT audit_purge_segment('transaction', %s, %s, 10)",
        [through, NOW],
        f"the transaction segment through {through} is not expired",
    )
    _refused("SELECT audit_purge_segment('payments', 1, %s, 10)", [NOW], "no stream payments")

    assert AgedLog.positions("security")[0] == 1


def test_the_function_refuses_a_time_ahead_of_the_database_clock(log):
    # A caller passing a far-future "now" would make yesterday's segment look expired.
    through = log.recent_security.position
    _refused(
        "SELECT audit_purge_segment('security', %s, '2099-01-01', 10)",
        [through],
        "is ahead of the database clock",
    )
    assert AgedLog.positions("security")[0] == 1


def test_a_hand_made_purge_record_does_not_excuse_an_early_deletion(log):
    """Someone who could delete entries early (the database's owner) and write a
    purge record for them: verification asks whether that segment had expired when
    the record was written, and it had not."""
    from audit import Category, record
    from audit.services import PURGE_STARTED_ACTION, verify_chain
    from tests.audit.tamper import execute, trigger_disabled

    through = log.recent_security.position
    with trigger_disabled():
        execute(
            "DELETE FROM audit_auditentry WHERE stream = 'security' AND position <= %s",
            [through],
        )
    record(
        PURGE_STARTED_ACTION,
        category=Category.TRANSACTION,
        actor="audit.retention",
        data={"stream": "security", "through_position": through},
    )

    report = verify_chain(full=True)
    assert not report.ok
    assert verify_chain(full=False).ok is False


def test_the_transaction_period_in_the_function_is_the_rule(db):
    # Seven years back, so that the purge's time is not ahead of the database clock.
    from audit import Category, record
    from audit.checkpoints import checkpoints_write

    with time_machine.travel(NOW - timedelta(days=7 * 365 + 30), tick=False):
        for number in range(3):
            record(
                "payments.payment.paid",
                category=Category.TRANSACTION,
                actor="tests",
                target=("payments.payment", number),
            )
        (sealed_checkpoint,) = [
            c for c in checkpoints_write(actor="tests") if c.stream == "transaction"
        ]
    sealed = sealed_checkpoint.created_at
    through = sealed_checkpoint.position

    _refused(
        "SELECT audit_purge_segment('transaction', %s, %s, 10)",
        [through, sealed + timedelta(days=7 * 365) - timedelta(seconds=1)],
        "not expired",
    )
    assert _purge("transaction", through, sealed + timedelta(days=7 * 365)) == through


def test_the_periods_in_the_function_are_the_rules(log):
    security = log.old_security
    _refused(
        "SELECT audit_purge_segment('security', 4, %s, 10)",
        [security.created_at + timedelta(days=365) - timedelta(seconds=1)],
        "not expired",
    )
    assert _purge("security", 4, security.created_at + timedelta(days=365)) == 4


def test_an_entry_newer_than_its_checkpoint_says_is_refused(log):
    # A checkpoint row slipped in at an old date over recent entries (its signature
    # would fail verification, but the function must not trust it either).
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audit_auditcheckpoint (stream, first_position, position, "
            "entry_hash, entry_count, previous_hash, created_at, body, signature, "
            "public_key, key_id) SELECT stream, 5, 7, entry_hash, 3, '', created_at, "
            "body, signature, public_key, key_id FROM audit_auditcheckpoint WHERE id = %s",
            [log.old_security.pk],
        )

    _refused(
        "SELECT audit_purge_segment('security', 7, %s, 10)",
        [NOW],
        "an entry of security through 7 is not expired",
    )


def test_truncate_is_refused(log):
    with connection.cursor() as cursor:
        # What the test profile's sessions allow (audit/models.py), switched back off.
        cursor.execute("SET LOCAL audit.allow_truncate = 'off'")

    _refused("TRUNCATE audit_auditentry", [], "audit_auditentry is append-only: TRUNCATE")
    _refused("TRUNCATE audit_auditcheckpoint CASCADE", [], "audit_auditcheckpoint is append-only")

    assert AuditEntry.objects.count() == 13
    assert AuditCheckpoint.objects.count() == 4
