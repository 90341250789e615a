"""Migration 0005 moves a log written as one chain into the transaction stream, where
it still verifies, and its old checkpoints with it."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from audit import Category, chain, record
from audit.checkpoints import _private_key, _raw_public, checkpoint_body, key_id, origin
from audit.models import GENESIS_HASH, AuditCheckpoint, AuditEntry, AuditStreamHead
from audit.services import verify_chain

BEFORE = [("audit", "0004_auditcheckpoint")]
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _migrate(targets: list[tuple[str, str]]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


@pytest.fixture
def one_chain() -> Iterator[None]:
    """The schema of 0004, holding three chained entries and a checkpoint."""
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("audit")
    _migrate(BEFORE)
    try:
        previous = GENESIS_HASH
        with connection.cursor() as cursor:
            for sequence, category in enumerate(("transaction", "security", "data"), start=1):
                fields = {
                    "sequence": sequence,
                    "created_at": START + timedelta(minutes=sequence),
                    "actor_type": "system",
                    "actor_id": "tests",
                    "action": f"tests.step_{sequence}",
                    "category": category,
                    "target_type": "",
                    "target_id": "",
                    "data": {},
                    "request_id": "",
                    "ip": None,
                    "personal_data_digest": "",
                    "previous_hash": previous,
                }
                previous = chain.entry_hash(fields)
                cursor.execute(
                    "INSERT INTO audit_auditentry (sequence, created_at, actor_type, actor_id, "
                    "action, category, target_type, target_id, data, request_id, ip, "
                    "personal_data, personal_data_digest, personal_data_redacted_at, "
                    "previous_hash, entry_hash) VALUES (%s, %s, 'system', 'tests', %s, %s, "
                    "'', '', '{}', '', NULL, NULL, '', NULL, %s, %s)",
                    [
                        sequence,
                        fields["created_at"],
                        fields["action"],
                        category,
                        fields["previous_hash"],
                        previous,
                    ],
                )
            cursor.execute(
                "INSERT INTO audit_auditchainhead (id, sequence, entry_hash) VALUES (1, 3, %s)",
                [previous],
            )
            key = _private_key()
            body = checkpoint_body(name=origin(), size=3, head_hash=previous, at=START)
            cursor.execute(
                "INSERT INTO audit_auditcheckpoint (sequence, entry_hash, entry_count, "
                "created_at, body, signature, public_key, key_id) "
                "VALUES (3, %s, 3, %s, %s, %s, %s, %s)",
                [
                    previous,
                    START + timedelta(hours=1),
                    body,
                    base64.b64encode(key.sign(body.encode())).decode(),
                    base64.b64encode(_raw_public(key)).decode(),
                    key_id(origin(), _raw_public(key)).hex(),
                ],
            )
        _migrate(latest)
        yield
    finally:
        _migrate(latest)


@pytest.mark.django_db(transaction=True)
def test_one_chain_becomes_the_transaction_stream_and_still_verifies(one_chain):
    entries = list(AuditEntry.objects.order_by("sequence"))

    assert [(entry.stream, entry.position) for entry in entries] == [
        ("transaction", 1),
        ("transaction", 2),
        ("transaction", 3),
    ]
    head = AuditStreamHead.objects.get(stream="transaction")
    assert (head.position, head.entry_hash) == (3, entries[-1].entry_hash)
    checkpoint = AuditCheckpoint.objects.get()
    assert (checkpoint.stream, checkpoint.first_position, checkpoint.position) == (
        "transaction",
        1,
        3,
    )
    report = verify_chain()
    assert report.ok, report.reason
    assert report.entries == 3
    # New entries go to their category's stream; the transaction stream continues.
    security = record("accounts.user.login_succeeded", category=Category.SECURITY, actor=None)
    payment = record("payments.payment.paid", category=Category.TRANSACTION, actor=None)
    # Each committed (autocommit) and was integrated once it had.
    security.refresh_from_db()
    payment.refresh_from_db()
    assert (security.stream, security.position, security.previous_hash) == (
        "security",
        1,
        GENESIS_HASH,
    )
    assert (payment.stream, payment.position, payment.previous_hash) == (
        "transaction",
        4,
        entries[-1].entry_hash,
    )
    assert (security.sequence, payment.sequence) == (4, 5)
    assert verify_chain().ok
