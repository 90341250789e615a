"""On PostgreSQL the table itself refuses to be rewritten, whoever connects."""

import pytest
from django.db import DatabaseError, connection, transaction

from audit import Category, record
from audit.checkpoints import checkpoint_write
from audit.models import AuditCheckpoint, AuditEntry
from audit.services import redact_personal_data, verify_chain

pytestmark = pytest.mark.postgres


@pytest.fixture
def entry(db) -> AuditEntry:
    return record(
        "accounts.user.created",
        category=Category.SECURITY,
        actor="accounts",
        personal_data={"email": "jane.doe@example.org"},
    )


def _execute(sql: str, params: list[object]) -> int:
    # A savepoint, so the refused statement does not abort the test's transaction.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def test_update_is_refused(entry):
    with pytest.raises(DatabaseError, match="append-only"):
        _execute("UPDATE audit_auditentry SET action = %s WHERE id = %s", ["forged", entry.pk])

    assert AuditEntry.objects.get(pk=entry.pk).action == "accounts.user.created"


def test_update_of_personal_data_and_another_column_together_is_refused(entry):
    with pytest.raises(DatabaseError, match="append-only"):
        _execute(
            "UPDATE audit_auditentry SET personal_data = NULL, target_id = %s WHERE id = %s",
            ["42", entry.pk],
        )


def test_delete_is_refused(entry):
    with pytest.raises(DatabaseError, match="append-only"):
        _execute("DELETE FROM audit_auditentry WHERE id = %s", [entry.pk])

    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_redacting_with_its_stamp_passes_the_trigger(entry):
    # The trigger lets a stamped redaction through (erasure must work in SQL too);
    # verification then asks for the entry that records it (tests/audit/test_redaction.py).
    changed = _execute(
        "UPDATE audit_auditentry SET personal_data = NULL, personal_data_redacted_at = now() "
        "WHERE id = %s",
        [entry.pk],
    )

    assert changed == 1
    redacted = AuditEntry.objects.get(pk=entry.pk)
    assert redacted.personal_data is None
    assert redacted.personal_data_redacted_at is not None


def test_nulling_personal_data_without_the_redaction_stamp_is_refused(entry):
    with pytest.raises(DatabaseError, match="a redaction must set personal_data_redacted_at"):
        _execute("UPDATE audit_auditentry SET personal_data = NULL WHERE id = %s", [entry.pk])

    assert AuditEntry.objects.get(pk=entry.pk).personal_data is not None


def test_the_redaction_stamp_is_set_once_and_the_data_never_comes_back(entry, staff):
    redact_personal_data(entries=[entry], actor=staff, reason="erasure request DSR-1")

    with pytest.raises(DatabaseError, match="set once"):
        _execute(
            "UPDATE audit_auditentry SET personal_data_redacted_at = NULL WHERE id = %s",
            [entry.pk],
        )
    # Through the ORM, so that the value is encrypted as the column expects.
    with pytest.raises(DatabaseError, match="cannot come back"), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).update(personal_data='{"values": {}}')


def test_a_stamp_without_a_redaction_is_refused(entry):
    with pytest.raises(DatabaseError, match="set once"):
        _execute(
            "UPDATE audit_auditentry SET personal_data_redacted_at = now() WHERE id = %s",
            [entry.pk],
        )


def test_re_encryption_is_allowed(entry):
    # What key rotation does: the same value written again under the newest key.
    current = AuditEntry.objects.get(pk=entry.pk).personal_data
    with transaction.atomic():
        changed = AuditEntry.objects.filter(pk=entry.pk).update(personal_data=current)

    assert changed == 1
    assert verify_chain().ok


def test_checkpoints_cannot_be_changed_or_deleted(entry):
    checkpoint = checkpoint_write(actor="tests", stream="security")

    with pytest.raises(DatabaseError, match="append-only: UPDATE refused"):
        _execute(
            "UPDATE audit_auditcheckpoint SET entry_hash = %s WHERE id = %s",
            ["0" * 64, checkpoint.pk],
        )
    with pytest.raises(DatabaseError, match="append-only: DELETE refused"):
        _execute("DELETE FROM audit_auditcheckpoint WHERE id = %s", [checkpoint.pk])

    assert AuditCheckpoint.objects.get(pk=checkpoint.pk).entry_hash == checkpoint.entry_hash


INTEGRATE = (
    "UPDATE audit_auditentry SET sequence = 99, position = 99, entry_hash = %s, "
    "integrated_at = now(){also} WHERE id = %s"
)


def test_a_queued_entry_may_be_given_its_place_once_and_nothing_else(db):
    queued = record("bookings.booking.created", category=Category.TRANSACTION, actor=None)

    with pytest.raises(DatabaseError, match="integration sets an entry's place"):
        _execute(INTEGRATE.format(also=", action = 'forged'"), ["f" * 64, queued.pk])
    with pytest.raises(DatabaseError, match="integration sets an entry's place"):
        _execute(
            "UPDATE audit_auditentry SET sequence = 99 WHERE id = %s",  # no place, no hash
            [queued.pk],
        )
    assert _execute(INTEGRATE.format(also=""), ["f" * 64, queued.pk]) == 1

    # Integrated: its place is as fixed as its contents.
    for sql in (
        "UPDATE audit_auditentry SET sequence = NULL, position = NULL, entry_hash = NULL "
        "WHERE id = %s",
        "UPDATE audit_auditentry SET position = 98 WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"):
            _execute(sql, [queued.pk])


def test_a_queued_entry_cannot_be_deleted(db):
    queued = record("bookings.booking.created", category=Category.TRANSACTION, actor=None)

    with pytest.raises(DatabaseError, match="append-only"):
        _execute("DELETE FROM audit_auditentry WHERE id = %s", [queued.pk])


def test_a_place_is_whole_and_from_one(db):
    """Half a place (an INSERT with a position and no sequence) would stop the sequencer
    for good; a place 0 would hide an entry before the first one verification walks."""
    queued = record("bookings.booking.created", category=Category.TRANSACTION, actor=None)

    with pytest.raises(DatabaseError, match="audit_entry_placed_whole"):
        _execute(
            "UPDATE audit_auditentry SET sequence = 0, position = 0, entry_hash = %s, "
            "integrated_at = now() WHERE id = %s",
            ["f" * 64, queued.pk],
        )
    with pytest.raises(DatabaseError, match="audit_entry_placed_whole"):
        _execute(
            "INSERT INTO audit_auditentry (stream, created_at, actor_type, actor_id, action, "
            "category, target_type, target_id, data, request_id, personal_data_digest, "
            "previous_hash, leaf_hash, position, entry_hash) VALUES ('transaction', now(), "
            "'system', 'x', 'forged', 'transaction', '', '', '{}', '', '', '', %s, 999999, "
            "'abc')",
            ["f" * 64],
        )
    assert verify_chain().ok  # the sequencer goes on
