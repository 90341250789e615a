"""Checkpoints signed before streams existed (the bare origin, four lines) still
verify, against the transaction stream that took over their chain."""

from __future__ import annotations

import base64
import json

import pytest
from django.utils import timezone

from audit import Category, record
from audit.checkpoints import (
    _private_key,
    _raw_public,
    checkpoint_body,
    checkpoint_check,
    checkpoints_verify,
    key_id,
    note,
    origin,
)
from audit.models import AuditCheckpoint, AuditEntry
from audit.services import verify_chain
from tests.audit.sequenced import integrated
from tests.audit.tamper import trigger_disabled


def _legacy_checkpoint(entry: AuditEntry) -> AuditCheckpoint:
    """Signed as audit.checkpoints did before migration 0005, stored as 0005 left it."""
    key = _private_key()
    name = origin()
    now = timezone.now()
    body = checkpoint_body(name=name, size=entry.position, head_hash=entry.entry_hash, at=now)
    return AuditCheckpoint.objects.create(
        stream="transaction",
        first_position=1,
        position=entry.position,
        entry_hash=entry.entry_hash,
        entry_count=entry.position,
        previous_hash="",
        created_at=now,
        body=body,
        signature=base64.b64encode(key.sign(body.encode())).decode(),
        public_key=base64.b64encode(_raw_public(key)).decode(),
        key_id=key_id(name, _raw_public(key)).hex(),
    )


@pytest.fixture
def legacy(db) -> AuditCheckpoint:
    entries = integrated(
        *(
            record("payments.payment.paid", category=Category.TRANSACTION, actor=None)
            for _ in range(3)
        )
    )
    return _legacy_checkpoint(entries[-1])


def test_a_legacy_checkpoint_verifies_and_anchors_the_walk(legacy):
    assert legacy.body.splitlines()[0] == "slotpay audit testserver"
    assert len(legacy.body.splitlines()) == 4
    assert checkpoint_check(legacy).ok

    report = verify_chain()

    assert report.ok, report.reason


def test_a_legacy_export_line_naming_a_sequence_verifies(legacy):
    line = {"sequence": legacy.position, "entry_hash": legacy.entry_hash, "note": note(legacy)}

    (check,) = checkpoints_verify([json.dumps(line)])

    assert check.ok, check.reason
    assert (check.stream, check.position) == ("transaction", 3)


@pytest.mark.postgres
def test_the_walk_checks_each_checkpoint_it_passes(legacy):
    signed = AuditEntry.objects.get(stream="transaction", position=legacy.position)
    forged = base64.b64encode(bytes(64)).decode()
    with trigger_disabled("audit_auditcheckpoint"):
        AuditCheckpoint.objects.filter(pk=legacy.pk).update(signature=forged)

    report = verify_chain()

    assert report.broken_at.pk == signed.pk
    assert "the signature does not verify" in report.reason
    with trigger_disabled("audit_auditcheckpoint"):
        AuditCheckpoint.objects.filter(pk=legacy.pk).update(signature="not base64")
    assert "its stored signature or key id is not readable" in verify_chain().reason


@pytest.mark.postgres
def test_a_checkpoint_whose_stored_fields_differ_from_the_signed_ones_is_refused(legacy):
    with trigger_disabled("audit_auditcheckpoint"):
        AuditCheckpoint.objects.filter(pk=legacy.pk).update(stream="security")

    assert (
        "not the signed ones" in checkpoint_check(AuditCheckpoint.objects.get(pk=legacy.pk)).reason
    )
