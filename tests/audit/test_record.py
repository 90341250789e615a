"""audit.record(): scrubbed, sealed entries, queued in the caller's transaction and
chained by the sequencer."""

import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest
from django.db import connection, transaction

from audit import ActorType, Category, chain, record
from audit.models import GENESIS_HASH, AuditChainHead, AuditEntry
from audit.services import verify_chain
from tests.audit.sequenced import integrated
from tests.conftest import PASSWORD


def _hash_of(entry: AuditEntry) -> str:
    leaf = chain.leaf_hash({name: getattr(entry, name) for name in chain.LEAF_FIELDS})
    assert leaf == entry.leaf_hash
    return chain.linked_hash(
        leaf, entry.sequence, entry.stream, entry.position, entry.previous_hash
    )


def test_an_entry_is_written_queued_with_the_digest_of_its_contents(db):
    entry = record(
        "payments.payment.paid",
        category=Category.TRANSACTION,
        actor="webhooks.stripe",
        data={"amount": 100},
    )

    stored = AuditEntry.objects.get(pk=entry.pk)
    assert (stored.sequence, stored.position, stored.entry_hash) == (None, None, None)
    assert stored.integrated_at is None
    fields = {name: getattr(stored, name) for name in chain.LEAF_FIELDS}
    assert stored.leaf_hash == chain.leaf_hash(fields)
    assert not AuditChainHead.objects.exists()  # nothing was locked, nothing moved


def test_entries_are_numbered_and_chained(db):
    for amount in (100, 200, 300):
        record(
            "payments.payment.paid",
            category=Category.TRANSACTION,
            actor="webhooks.stripe",
            target=("payments.payment", amount),
            data={"amount": amount},
        )
    integrated()

    entries = list(AuditEntry.objects.order_by("sequence"))

    assert [entry.sequence for entry in entries] == [1, 2, 3]
    assert entries[0].previous_hash == GENESIS_HASH
    assert entries[1].previous_hash == entries[0].entry_hash
    assert entries[2].previous_hash == entries[1].entry_hash
    # Recomputed from what the database returns, not from what record() held.
    assert [_hash_of(entry) for entry in entries] == [entry.entry_hash for entry in entries]
    head = AuditChainHead.objects.get()
    assert (head.sequence, head.entry_hash) == (3, entries[2].entry_hash)
    assert (entries[2].actor_type, entries[2].actor_id) == (ActorType.SYSTEM, "webhooks.stripe")
    assert (entries[2].target_type, entries[2].target_id) == ("payments.payment", "300")


@pytest.mark.parametrize(
    "data",
    [
        {"amount": Decimal("120.50"), "rate": 0.1, "big": 2**63 + 1, "refunded": False},
        {"when": dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC), "id": uuid.UUID(int=7)},
        {"nested": {"b": [1, "two", None], "a": {"z": 1, "y": 2}}, "text": "Zoë ✓ \u2028"},
    ],
)
def test_the_hash_survives_the_database_round_trip(db, data):
    # jsonb reorders keys and may print numbers differently; the hash must not care.
    record("payments.refund.requested", category=Category.TRANSACTION, actor=None, data=data)

    assert verify_chain().ok


def test_data_is_scrubbed_of_emails(db):
    entry = record(
        "bookings.booking.note_added",
        category=Category.DATA,
        actor=None,
        data={"note": "client jane.doe@example.org asked", "cc": ["ops@example.org"]},
        personal_data={"email": "jane.doe@example.org"},
    )

    stored = AuditEntry.objects.get(pk=entry.pk)
    assert "@example.org" not in json.dumps(stored.data)
    assert stored.data["note"].startswith("client j***@")
    assert json.loads(stored.personal_data)["values"] == {"email": "jane.doe@example.org"}


def test_personal_data_is_encrypted_at_rest(db):
    entry = record(
        "accounts.user.created",
        category=Category.SECURITY,
        actor="accounts",
        personal_data={"email": "jane.doe@example.org", "name": "Jane Doe"},
    )

    with connection.cursor() as cursor:
        cursor.execute("SELECT personal_data FROM audit_auditentry WHERE id = %s", [entry.pk])
        (raw,) = cursor.fetchone()

    assert raw.startswith("gAAAAA")
    assert "jane" not in raw.lower()
    assert "Doe" not in raw


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("2001:db8:abcd:12:3456::1", "2001:db8:abcd::"),
        ("not an address", None),
    ],
)
def test_ip_is_truncated(db, given, stored):
    entry = record("accounts.user.login_failed", category=Category.SECURITY, actor=None, ip=given)

    assert AuditEntry.objects.get(pk=entry.pk).ip == stored
    assert verify_chain().ok


def test_request_id_and_address_come_from_the_current_request(client, staff):
    response = client.post(
        "/admin/login/",
        {"username": staff.email, "password": PASSWORD},
        REMOTE_ADDR="198.51.100.23",
    )

    assert response.status_code == 302
    entry = AuditEntry.objects.get(action="accounts.user.login_succeeded")
    assert entry.request_id == response["X-Request-ID"]
    assert entry.ip == "198.51.100.0"
    assert entry.actor_id == str(staff.pk)


def test_outside_a_request_there_is_no_request_id(db):
    entry = record("audit.chain.verified", category=Category.SECURITY, actor="audit")

    assert (entry.request_id, entry.ip) == ("", None)


def test_an_unknown_category_is_refused(db):
    with pytest.raises(ValueError, match="unknown audit category"):
        record("payments.payment.paid", category="payments", actor=None)

    assert not AuditEntry.objects.exists()


def test_a_rolled_back_transaction_leaves_no_entry_and_the_chain_intact(db):
    [first] = integrated(
        record("bookings.booking.created", category=Category.TRANSACTION, actor=None)
    )

    def confirm_then_fail() -> None:
        with transaction.atomic():
            record("bookings.booking.confirmed", category=Category.TRANSACTION, actor=None)
            raise RuntimeError("the booking could not be confirmed")

    with pytest.raises(RuntimeError):
        confirm_then_fail()

    assert list(AuditEntry.objects.values_list("action", flat=True)) == ["bookings.booking.created"]
    head = AuditChainHead.objects.get()
    assert (head.sequence, head.entry_hash) == (1, first.entry_hash)
    assert verify_chain().ok

    [after] = integrated(
        record("bookings.booking.cancelled", category=Category.TRANSACTION, actor=None)
    )

    assert (after.sequence, after.previous_hash) == (2, first.entry_hash)
    assert verify_chain().ok


def test_the_beat_task_integrates_what_no_writer_picked_up(db):
    from audit.tasks import integrate

    # The test's transaction never commits: no after-commit try ran, as when a writer
    # is killed between its commit and its try.
    queued = [
        record("bookings.booking.created", category=Category.TRANSACTION, actor=None)
        for _ in range(3)
    ]

    outcome = integrate.apply().get()

    assert outcome == {"integrated": 3, "queued": 0, "oldest_age_seconds": 0.0}
    stored = AuditEntry.objects.filter(pk__in=[entry.pk for entry in queued])
    assert sorted(stored.values_list("sequence", flat=True)) == [1, 2, 3]
    assert verify_chain().ok
