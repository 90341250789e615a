"""Signed checkpoints of the audit chain, and checking them against the chain.

A checkpoint is a C2SP signed note (github.com/C2SP/C2SP, tlog-checkpoint.md and
signed-note.md) whose body says how long the chain was and what its head hash was::

    slotpay audit example.com          origin: this log's name
    1042                               the chain's size (its head's sequence)
    q1x2...=                           the head's entry_hash, base64
    time 2026-11-30T00:00:00.000000Z   when it was signed (an extension line)

    — slotpay audit example.com <base64 of key id (4 bytes) + Ed25519 signature>

The key (AUDIT_CHECKPOINT_KEY) is not in the database, so whoever can rewrite the
table and rehash every entry still cannot sign a checkpoint of the rewritten chain:
an exported checkpoint, kept elsewhere, then disagrees with the chain's entry at its
sequence. Checkpoints are never signed over a chain that does not verify.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from audit.categories import Category
from audit.models import AuditCheckpoint, AuditEntry
from audit.services import Actor, locked_head, record, verify_chain

SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space start every signature line
ED25519_ALGORITHM = b"\x01"  # signed-note's signature type byte for Ed25519


class ChainBrokenError(Exception):
    """The chain does not verify: no checkpoint is signed over it."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def origin() -> str:
    """This log's name in every checkpoint: ``slotpay audit <SITE_URL's host>``."""
    return f"slotpay audit {urlsplit(settings.SITE_URL).hostname or settings.SITE_URL}"


def _private_key() -> Ed25519PrivateKey:
    raw = str(settings.AUDIT_CHECKPOINT_KEY).strip()
    try:
        seed = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ImproperlyConfigured("AUDIT_CHECKPOINT_KEY is not URL-safe base64") from exc
    if len(seed) != 32:
        raise ImproperlyConfigured(
            f"AUDIT_CHECKPOINT_KEY must hold 32 bytes (an Ed25519 seed), not {len(seed)}"
        )
    return Ed25519PrivateKey.from_private_bytes(seed)


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_key() -> str:
    """The configured key's public half, base64: what verifies our checkpoints."""
    return _b64(_raw_public(_private_key()))


def key_id(name: str, raw_public_key: bytes) -> bytes:
    """signed-note's key id: the first 4 bytes of SHA-256(name, newline, type, key)."""
    return hashlib.sha256(name.encode() + b"\n" + ED25519_ALGORITHM + raw_public_key).digest()[:4]


def checkpoint_body(*, name: str, size: int, head_hash: str, at: dt.datetime) -> str:
    stamp = at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{name}\n{size}\n{_b64(bytes.fromhex(head_hash))}\ntime {stamp}\n"


def note(checkpoint: AuditCheckpoint) -> str:
    """The whole signed note: body, blank line, signature line."""
    name = checkpoint.body.split("\n", 1)[0]
    signed = bytes.fromhex(checkpoint.key_id) + base64.b64decode(checkpoint.signature)
    return f"{checkpoint.body}\n{SIGNATURE_PREFIX}{name} {_b64(signed)}\n"


def checkpoint_write(*, actor: Actor) -> AuditCheckpoint:
    """Verify the chain, then sign its head and store the checkpoint (audited).

    Raises ChainBrokenError, signing nothing, when the chain does not verify. The
    walk runs before the head is locked (holding it would stall every writer for
    the walk's length); entries appended meanwhile are covered by the next walk.
    """
    report = verify_chain()
    if not report.ok:
        where = f"#{report.broken_at.sequence}" if report.broken_at else "its end"
        raise ChainBrokenError(f"the audit chain is broken at {where}: {report.reason}")
    key = _private_key()
    name = origin()
    raw_public = _raw_public(key)
    with transaction.atomic():
        head = locked_head()
        now = timezone.now()
        body = checkpoint_body(name=name, size=head.sequence, head_hash=head.entry_hash, at=now)
        checkpoint = AuditCheckpoint.objects.create(
            sequence=head.sequence,
            entry_hash=head.entry_hash,
            entry_count=AuditEntry.objects.count(),
            created_at=now,
            body=body,
            signature=_b64(key.sign(body.encode())),
            public_key=_b64(raw_public),
            key_id=key_id(name, raw_public).hex(),
        )
        record(
            "audit.checkpoint.written",
            category=Category.SECURITY,
            actor=actor,
            target=checkpoint,
            data={
                "sequence": checkpoint.sequence,
                "entry_hash": checkpoint.entry_hash,
                "key_id": checkpoint.key_id,
            },
        )
    return checkpoint


def _export_line(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    return {
        "sequence": checkpoint.sequence,
        "entry_hash": checkpoint.entry_hash,
        "entry_count": checkpoint.entry_count,
        "created_at": checkpoint.created_at.isoformat(),
        "public_key": checkpoint.public_key,
        "key_id": checkpoint.key_id,
        "note": note(checkpoint),
    }


def checkpoints_export(*, actor: Actor) -> str:
    """Every checkpoint, oldest first, one JSON object a line (JSONL), each carrying
    its signed note and public key; the export is audited."""
    checkpoints = AuditCheckpoint.objects.order_by("created_at", "id")
    lines = [json.dumps(_export_line(checkpoint), sort_keys=True) for checkpoint in checkpoints]
    record(
        "audit.checkpoints.exported",
        category=Category.SECURITY,
        actor=actor,
        data={
            "checkpoints": len(lines),
            "up_to_sequence": max((c.sequence for c in checkpoints), default=0),
        },
    )
    return "".join(f"{line}\n" for line in lines)


# --- Checking -------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointCheck:
    """One checkpoint checked: its signature, then the chain's entry at its sequence."""

    label: str
    sequence: int | None
    entry_hash: str = ""
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason


@dataclass(frozen=True)
class _Signed:
    name: str
    size: int
    head_hash: str


def _parse(text: str, trusted: dict[bytes, bytes]) -> _Signed:
    """The body of a signed note whose signature verifies under a trusted key.

    ``trusted`` maps key ids to raw public keys. Raises ValueError saying what fails.
    """
    body, blank, signatures = text.partition("\n\n")
    if not blank:
        raise ValueError("not a signed note (no blank line before the signatures)")
    body += "\n"
    lines = body.split("\n")[:-1]
    if len(lines) < 3:
        raise ValueError("the body needs an origin, a size and a hash")
    name, size_text, hash_text = lines[:3]
    if not size_text.isdigit() or (size_text.startswith("0") and size_text != "0"):
        raise ValueError(f"the size {size_text!r} is not a decimal number")
    try:
        head_hash = base64.b64decode(hash_text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the head hash is not base64") from exc
    if len(head_hash) != 32:
        raise ValueError("the head hash is not 32 bytes")
    problem = "no signature by this origin's name"
    for line in signatures.split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            continue
        signer, _, encoded = line[len(SIGNATURE_PREFIX) :].rpartition(" ")
        if signer != name:
            continue  # a witness's or another key's: skipped, as C2SP says
        try:
            signed = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            problem = "the signature is not base64"
            continue
        public = trusted.get(signed[:4])
        if public is None:
            problem = "signed by a key this site does not trust"
            continue
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(signed[4:], body.encode())
        except InvalidSignature:
            problem = "the signature does not verify (the text or the signature was altered)"
            continue
        return _Signed(name=name, size=int(size_text), head_hash=head_hash.hex())
    raise ValueError(problem)


def trusted_keys(extra_public_keys: Iterable[str] = ()) -> dict[bytes, bytes]:
    """Key ids to public keys: the configured key's under this origin, plus
    ``extra_public_keys`` (base64; an older key after a rotation) under it too."""
    name = origin()
    keys = [_raw_public(_private_key())]
    for encoded in extra_public_keys:
        raw = base64.b64decode(encoded)
        if len(raw) != 32:
            raise ValueError("an Ed25519 public key is 32 bytes")
        keys.append(raw)
    return {key_id(name, raw): raw for raw in keys}


def _against_chain(signed: _Signed) -> str:
    if signed.size == 0:
        return ""
    stored = (
        AuditEntry.objects.filter(sequence=signed.size).values_list("entry_hash", flat=True).first()
    )
    if stored is None:
        return f"the chain has no entry #{signed.size} (entries were removed)"
    if stored != signed.head_hash:
        return (
            f"the chain's entry #{signed.size} does not have the hash this checkpoint "
            "signed (the chain was rewritten)"
        )
    return ""


def check_note(text: str, *, label: str, trusted: dict[bytes, bytes]) -> CheckpointCheck:
    try:
        signed = _parse(text, trusted)
    except ValueError as exc:
        return CheckpointCheck(label, None, reason=str(exc))
    return CheckpointCheck(label, signed.size, signed.head_hash, _against_chain(signed))


def checkpoint_check(checkpoint: AuditCheckpoint) -> CheckpointCheck:
    """A stored checkpoint checked against the configured key and the chain."""
    return check_note(note(checkpoint), label=str(checkpoint), trusted=trusted_keys())


def checkpoints_verify(
    lines: Iterable[str], *, extra_public_keys: Iterable[str] = ()
) -> list[CheckpointCheck]:
    """Check every checkpoint of an export (JSONL, as checkpoints_export writes it):
    its signature under a trusted key, its readable fields against the signed text,
    and the chain's entry at its sequence against the hash it signed."""
    trusted = trusted_keys(extra_public_keys)
    checks = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        label = f"line {number}"
        try:
            exported = json.loads(line)
            text = exported["note"]
        except (ValueError, KeyError, TypeError):
            checks.append(
                CheckpointCheck(label, None, reason="not a checkpoint (JSON with a note)")
            )
            continue
        check = check_note(str(text), label=label, trusted=trusted)
        if check.ok and (exported.get("sequence"), exported.get("entry_hash")) != (
            check.sequence,
            check.entry_hash,
        ):
            check = CheckpointCheck(
                label, check.sequence, check.entry_hash, "the line's fields are not the signed ones"
            )
        checks.append(check)
    return checks
