"""Signed checkpoints: written over a chain that verifies, exported, and able to catch
a chain rewritten by someone who could rewrite the whole table."""

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.management import CommandError, call_command

from audit import Category, record
from audit.checkpoints import ChainBrokenError, checkpoint_check, checkpoint_write, origin
from audit.models import AuditChainHead, AuditCheckpoint, AuditEntry
from audit.services import verify_chain
from audit.tasks import write_checkpoint
from tests.audit.sequenced import integrated
from tests.audit.tamper import rewrite_and_rehash, trigger_disabled


@pytest.fixture
def entries(db) -> list[AuditEntry]:
    return integrated(
        *(
            record(
                "payments.payment.paid",
                category=Category.TRANSACTION,
                actor="webhooks.stripe",
                target=("payments.payment", number),
                data={"amount": number * 100},
            )
            for number in range(1, 6)
        )
    )


def _export(tmp_path: Path) -> Path:
    exported = tmp_path / "checkpoints.jsonl"
    call_command("audit_checkpoint", "export", "--output", str(exported))
    return exported


def _verify_message(exported: Path, *extra: str) -> str:
    with pytest.raises(CommandError) as raised:
        call_command("audit_checkpoint", "verify", str(exported), *extra)
    return str(raised.value)


def test_a_checkpoint_signs_the_chains_head(entries):
    checkpoint = checkpoint_write(actor="tests")

    assert (checkpoint.stream, checkpoint.first_position, checkpoint.position) == (
        "transaction",
        1,
        5,
    )
    assert checkpoint.entry_hash == entries[-1].entry_hash
    assert checkpoint.entry_count == 5
    name, size, head, stamp, first, count, previous = checkpoint.body.splitlines()
    assert name == origin("transaction") == "slotpay audit testserver/transaction"
    assert size == "5"
    assert base64.b64decode(head).hex() == entries[-1].entry_hash
    assert stamp.startswith("time ")
    assert (first, count, previous) == ("first 1", "count 5", "previous none")
    assert checkpoint_check(checkpoint).ok
    written = AuditEntry.objects.get(action="audit.checkpoint.written")
    assert written.target_id == str(checkpoint.pk)
    assert verify_chain().ok


def test_the_export_verifies_against_an_intact_chain(entries, tmp_path, capsys):
    checkpoint_write(actor="tests")
    record("bookings.booking.created", category=Category.TRANSACTION, actor="bookings")
    checkpoint_write(actor="tests")

    exported = _export(tmp_path)
    call_command("audit_checkpoint", "verify", str(exported))
    call_command("audit_verify", "--checkpoints", str(exported))

    out = capsys.readouterr().out
    assert "2 checkpoints verified" in out
    assert "2 checkpoints match it" in out
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    # The checkpoint's own record went to the security stream: the second segment
    # holds the booking alone, and names the first checkpoint.
    assert [(line["stream"], line["first_position"], line["position"]) for line in lines] == [
        ("transaction", 1, 5),
        ("transaction", 6, 6),
    ]
    assert lines[0]["note"].startswith("slotpay audit testserver/transaction\n5\n")
    assert "\n\n\u2014 slotpay audit testserver/transaction " in lines[0]["note"]
    assert lines[0]["public_key"] == AuditCheckpoint.objects.first().public_key
    first, second = AuditCheckpoint.objects.order_by("position")
    assert second.previous_hash == hashlib.sha256(first.body.encode()).hexdigest()


@pytest.mark.postgres
def test_an_exported_checkpoint_catches_a_rewritten_chain(entries, tmp_path):
    checkpoint_write(actor="tests")
    exported = _export(tmp_path)
    # The attacker rewrites entry 2, rehashes the rest and deletes the checkpoints
    # in the database; the chain alone now verifies.
    rewrite_and_rehash(2)
    with trigger_disabled("audit_auditcheckpoint"):
        AuditCheckpoint.objects.all().delete()
    assert verify_chain().ok

    message = _verify_message(exported)

    assert (
        "line 1: the transaction stream's entry at 5 does not have the hash this checkpoint "
        "signed" in message
    )
    with pytest.raises(CommandError, match="checkpoints do not hold"):
        call_command("audit_verify", "--checkpoints", str(exported))


def test_a_tampered_signature_is_refused(entries, tmp_path):
    checkpoint_write(actor="tests")
    exported = _export(tmp_path)
    line = json.loads(exported.read_text())
    body, _, signature_line = line["note"].rpartition("\u2014 ")
    name, _, encoded = signature_line.strip().rpartition(" ")
    signed = bytearray(base64.b64decode(encoded))
    signed[10] ^= 0x01
    line["note"] = f"{body}\u2014 {name} {base64.b64encode(bytes(signed)).decode()}\n"
    exported.write_text(json.dumps(line) + "\n")

    assert "the signature does not verify" in _verify_message(exported)


def test_a_checkpoint_rewritten_to_match_a_rewritten_chain_is_refused(entries, tmp_path):
    # Changing the signed text (here the hash) without the key breaks the signature.
    checkpoint_write(actor="tests")
    exported = _export(tmp_path)
    line = json.loads(exported.read_text())
    forged_hash = base64.b64encode(bytes(32)).decode()
    lines = line["note"].split("\n")
    lines[2] = forged_hash
    line["note"] = "\n".join(lines)
    line["entry_hash"] = "0" * 64
    exported.write_text(json.dumps(line) + "\n")

    assert "the signature does not verify" in _verify_message(exported)


def test_a_checkpoint_signed_by_another_key_is_refused_unless_trusted(entries, tmp_path, settings):
    checkpoint_write(actor="tests")
    exported = _export(tmp_path)
    old_public = AuditCheckpoint.objects.get().public_key
    # The key was rotated: the old checkpoints need the old public key named.
    settings.AUDIT_CHECKPOINT_KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()

    assert "signed by a key this site does not trust" in _verify_message(exported)
    call_command("audit_checkpoint", "verify", str(exported), "--public-key", old_public)


def test_a_retired_key_keeps_its_checkpoints_trusted_by_the_full_verification(entries, settings):
    checkpoint_write(actor="tests")
    old_public = AuditCheckpoint.objects.get().public_key
    settings.AUDIT_CHECKPOINT_KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()
    rotated = verify_chain(full=True)
    assert not rotated.ok
    assert "signed by a key this site does not trust" in rotated.reason

    settings.AUDIT_CHECKPOINT_RETIRED_PUBLIC_KEYS = [old_public]
    assert verify_chain(full=True).ok


def test_no_checkpoint_is_signed_over_a_broken_chain(entries):
    AuditChainHead.objects.filter(pk=1).update(sequence=3)

    with pytest.raises(ChainBrokenError, match="chain head says 3"):
        checkpoint_write(actor="tests")
    with pytest.raises(CommandError, match="No checkpoint written"):
        call_command("audit_checkpoint", "write")
    assert write_checkpoint.apply().get(disable_sync_subtasks=False)["ok"] is False
    assert not AuditCheckpoint.objects.exists()


def test_the_daily_full_walk_finds_an_edit_the_hourly_run_cannot_and_alerts(entries):
    from core.models import Alert
    from tests.audit.tamper import execute, trigger_disabled

    assert verify_chain(full=False).ok  # remembered: the hourly run starts after this
    with trigger_disabled():
        execute("UPDATE audit_auditentry SET data = '{}' WHERE id = %s", [entries[1].pk])
    assert verify_chain(full=False).ok  # behind the verified point: not read again

    assert write_checkpoint.apply().get(disable_sync_subtasks=False)["ok"] is False
    assert Alert.objects.get(key="audit.chain.full", cleared_at=None)
    assert not AuditCheckpoint.objects.exists()


def test_the_daily_task_writes_one_per_stream_that_grew(entries):
    outcome = write_checkpoint.apply().get(disable_sync_subtasks=False)

    # The transaction checkpoint's record opened the security stream, so it grew too.
    assert outcome == {"ok": True, "checkpoints": {"transaction": 5, "security": 1}}
    assert set(AuditCheckpoint.objects.values_list("stream", "position")) == {
        ("transaction", 5),
        ("security", 1),
    }
    written = AuditEntry.objects.filter(action="audit.checkpoint.written")
    assert {(entry.actor_type, entry.actor_id) for entry in written} == {
        ("system", "audit.tasks.write_checkpoint")
    }
    assert [entry.data["stream"] for entry in written.order_by("sequence")] == [
        "transaction",
        "security",
    ]


def test_a_stream_with_nothing_new_gets_no_checkpoint(entries):
    first = checkpoint_write(actor="tests")

    assert checkpoint_write(actor="tests") is None
    assert AuditCheckpoint.objects.get(stream="transaction") == first


def test_the_key_may_come_without_padding_and_its_public_half_is_stored(entries, settings):
    seed = bytes(range(1, 33))
    settings.AUDIT_CHECKPOINT_KEY = base64.urlsafe_b64encode(seed).decode().rstrip("=")

    checkpoint = checkpoint_write(actor="tests")

    expected = (
        Ed25519PrivateKey.from_private_bytes(seed)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    assert base64.b64decode(checkpoint.public_key) == expected
    assert checkpoint_check(checkpoint).ok
