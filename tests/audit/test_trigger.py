"""On PostgreSQL the table itself refuses to be rewritten, whoever connects."""

import pytest
from django.db import DatabaseError, connection, transaction

from audit import Category, record
from audit.models import AuditEntry
from audit.services import verify_chain

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


def test_redacting_personal_data_is_allowed(entry):
    changed = _execute(
        "UPDATE audit_auditentry SET personal_data = NULL, personal_data_redacted_at = now() "
        "WHERE id = %s",
        [entry.pk],
    )

    assert changed == 1
    redacted = AuditEntry.objects.get(pk=entry.pk)
    assert redacted.personal_data is None
    assert redacted.personal_data_redacted_at is not None
    assert verify_chain().ok
