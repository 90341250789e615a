"""Chain verification names the first entry that was altered, removed or cut off.

Tampering goes straight to the table, as someone with database access would; on
PostgreSQL that means switching the append-only trigger off first.
"""

import json

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection

from audit import Category, chain, record
from audit.models import AuditChainHead, AuditEntry, AuditStreamHead
from audit.services import redact_personal_data, verify_chain
from tests.audit.sequenced import integrated
from tests.audit.tamper import rehashed, trigger_disabled


def _payments(count: int) -> list[AuditEntry]:
    return [
        record(
            f"payments.payment.step_{number}",
            category=Category.TRANSACTION,
            actor="webhooks.stripe",
            data={"amount": number * 100},
            personal_data={"email": f"client{number}@example.org"},
        )
        for number in range(1, count + 1)
    ]


@pytest.fixture
def entries(db) -> list[AuditEntry]:
    return integrated(*_payments(5))


def _broken_message() -> str:
    with pytest.raises(CommandError) as raised:
        call_command("audit_verify", "--full")
    return str(raised.value)


def test_an_intact_chain_verifies(entries, capsys):
    report = verify_chain(batch_size=2)

    assert report.ok
    assert report.entries == 5
    call_command("audit_verify", "--full")
    out = capsys.readouterr().out
    assert "transaction: from genesis, 5 entries, ok" in out
    assert "security: from genesis, 0 entries, ok" in out
    assert "Audit chain verified: 5 entries." in out
    assert "integration: no entry waiting to be integrated" in out


def test_an_empty_chain_verifies(db):
    assert verify_chain().ok


def test_changed_data_is_named(entries):
    altered = entries[2]
    with trigger_disabled(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditentry SET data = %s WHERE id = %s",
            [json.dumps({"amount": 1}), altered.pk],
        )

    message = _broken_message()

    assert f"entry id={altered.pk} sequence=3" in message
    assert "entry_hash does not match" in message


def test_a_rewritten_and_rehashed_entry_breaks_the_link_to_the_next(entries):
    # Whoever rewrites an entry and recomputes its hash still leaves the next entry
    # pointing at the old hash.
    altered = entries[1]
    fields = {name: getattr(altered, name) for name in chain.LEAF_FIELDS}
    fields["data"] = {"amount": 1}
    leaf, entry_hash = rehashed(altered, fields, altered.previous_hash)
    with trigger_disabled(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditentry SET data = %s, leaf_hash = %s, entry_hash = %s WHERE id = %s",
            [json.dumps(fields["data"]), leaf, entry_hash, altered.pk],
        )

    message = _broken_message()

    assert f"entry id={entries[2].pk} sequence=3" in message
    assert "previous_hash does not match" in message


def test_a_leaf_digest_rewritten_with_its_entry_is_still_caught(entries):
    # The contents and the stored leaf changed together: the chained hash covers the
    # leaf, so the entry's hash no longer matches.
    altered = entries[2]
    fields = {name: getattr(altered, name) for name in chain.LEAF_FIELDS}
    fields["data"] = {"amount": 1}
    with trigger_disabled(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditentry SET data = %s, leaf_hash = %s WHERE id = %s",
            [json.dumps(fields["data"]), chain.leaf_hash(fields), altered.pk],
        )

    message = _broken_message()

    assert f"entry id={altered.pk} sequence=3" in message
    assert "entry_hash does not match" in message


def test_two_entries_swapped_are_caught(entries):
    first, second = entries[1], entries[2]
    with trigger_disabled(), connection.cursor() as cursor:
        for entry, position in ((first, 1000), (second, first.position), (first, second.position)):
            cursor.execute(
                "UPDATE audit_auditentry SET position = %s WHERE id = %s", [position, entry.pk]
            )

    message = _broken_message()

    assert f"entry id={second.pk} sequence=3" in message
    assert "previous_hash does not match" in message


def test_an_entry_edited_while_queued_is_caught_once_integrated(db):
    queued = _payments(3)
    with trigger_disabled(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditentry SET target_id = %s WHERE id = %s", ["forged", queued[1].pk]
        )

    message = _broken_message()

    assert f"entry id={queued[1].pk} sequence=2" in message
    assert "entry_hash does not match" in message


def test_a_queued_entry_edited_is_caught_before_it_is_integrated(db):
    from audit.services import _queued_problem

    queued = _payments(2)
    with trigger_disabled(), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditentry SET action = 'x' WHERE id = %s", [queued[0].pk])

    problem = _queued_problem(0)

    assert problem is not None
    assert problem.broken_at.pk == queued[0].pk
    assert "leaf digest" in problem.reason


def test_a_deleted_middle_entry_is_reported(entries):
    with trigger_disabled(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [entries[2].pk])

    message = _broken_message()

    assert f"entry id={entries[3].pk} sequence=4" in message
    assert "position 3 of the transaction stream is missing (found 4)" in message


def test_entries_removed_from_the_end_are_reported(entries):
    with trigger_disabled(), connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM audit_auditentry WHERE id IN (%s, %s)", [entries[3].pk, entries[4].pk]
        )

    report = verify_chain()
    message = _broken_message()

    assert report.entries == 3
    assert "end of chain" in message
    assert (
        "the transaction stream's head is at position 5 but its last stored entry is at 3"
        in message
    )


def test_a_head_moved_back_is_reported(entries):
    # What is left after forging entries onto the end without moving the head.
    AuditChainHead.objects.filter(pk=1).update(sequence=3)

    message = _broken_message()

    assert f"entry id={entries[4].pk} sequence=5" in message
    assert "entry #5 is stored but the chain head says 3" in message


def test_a_stream_head_moved_back_is_reported(entries):
    AuditStreamHead.objects.filter(stream="transaction").update(position=3)

    message = _broken_message()

    assert "the transaction stream's last entry is at position 5 but its head says 3" in message


def test_altered_personal_data_is_named(entries):
    altered = entries[1]
    envelope = json.loads(altered.personal_data)
    envelope["values"]["email"] = "someone.else@example.org"
    with trigger_disabled():
        # Through the ORM so that the forged value is properly encrypted.
        AuditEntry.objects.filter(pk=altered.pk).update(personal_data=json.dumps(envelope))

    message = _broken_message()

    assert f"entry id={altered.pk} sequence=2" in message
    assert "personal data does not match its digest" in message


def test_personal_data_removed_without_a_redaction_is_named(entries):
    # The trigger refuses this; someone who can switch it off is caught here.
    altered = entries[3]
    with trigger_disabled():
        AuditEntry.objects.filter(pk=altered.pk).update(personal_data=None)

    message = _broken_message()

    assert f"entry id={altered.pk} sequence=4" in message
    assert "personal data is missing but was never redacted" in message


def test_redaction_keeps_the_chain_valid_and_is_recorded(entries, staff):
    redacted = redact_personal_data(
        entries=entries[1:3], actor=staff, reason="erasure request DSR-7"
    )

    assert redacted == 2
    report = verify_chain()
    assert report.ok
    assert report.entries == AuditEntry.objects.count()
    for entry in AuditEntry.objects.filter(pk__in=[entries[1].pk, entries[2].pk]):
        assert entry.personal_data is None
        assert entry.personal_data_redacted_at is not None
        assert entry.personal_data_digest  # still what the hash covers
    last = AuditEntry.objects.order_by("sequence").last()
    assert last.action == "audit.personal_data.redacted"
    assert last.actor_id == str(staff.pk)
    assert last.data == {
        "entries": 2,
        "sequences": [entries[1].sequence, entries[2].sequence],
        "reason": "erasure request DSR-7",
    }
    assert AuditEntry.objects.get(pk=entries[0].pk).personal_data is not None


def test_personal_data_that_no_key_decrypts_is_named(entries):
    unreadable = entries[2]
    # A key that was dropped before rotation finished; the trigger lets this column change.
    foreign = Fernet(Fernet.generate_key()).encrypt(b'{"nonce": "", "values": {}}').decode()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditentry SET personal_data = %s WHERE id = %s", [foreign, unreadable.pk]
        )

    message = _broken_message()

    assert f"entry id={unreadable.pk} sequence=3" in message
    assert "personal data cannot be read" in message
