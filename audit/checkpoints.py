"""Signed checkpoints of the audit streams, and checking them against the chain.

A checkpoint closes a segment of one stream. It is a C2SP signed note
(github.com/C2SP/C2SP, tlog-checkpoint.md and signed-note.md) whose body says how
long the stream was and what its head hash was, then (extension lines) when, which
positions the segment covers, and the hash of the stream's previous checkpoint::

    slotpay audit example.com/security origin: this log's name and the stream
    1042                               the stream's size (its head's position)
    q1x2...=                           the head's entry_hash, base64
    time 2026-11-30T00:00:00.000000Z   when it was signed
    first 1001                         the segment's first position
    count 42                           its entries (positions are gap-free)
    previous 8a9b...=                  SHA-256 of the previous checkpoint's body, base64

    — slotpay audit example.com/security <base64 of key id + Ed25519 signature>

Checkpoints signed before streams existed have the bare origin and only the first
four lines; they belong to the transaction stream and still verify.

The key (AUDIT_CHECKPOINT_KEY) is not in the database, so whoever can rewrite the
table and rehash every entry still cannot sign a checkpoint of the rewritten chain:
an exported checkpoint, kept elsewhere, then disagrees with the chain's entry at its
position. A checkpoint also anchors what survives a purge of the segments before it.
Checkpoints are never signed over a chain that does not verify, and never deleted.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
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
from audit.models import AuditCheckpoint, AuditEntry, Stream
from audit.sequencer import (
    integrate_after_commit,
    integrate_batch,
    locked_head,
    locked_stream_head,
)
from audit.services import (
    STREAMS,
    Actor,
    purged_through,
    record,
    verify_chain,
)

SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space start every signature line
ED25519_ALGORITHM = b"\x01"  # signed-note's signature type byte for Ed25519


class ChainBrokenError(Exception):
    """The chain does not verify: no checkpoint is signed over it."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def origin(stream: str | None = None) -> str:
    """This log's name in a checkpoint: ``slotpay audit <SITE_URL's host>/<stream>``
    (without the stream: the name of checkpoints signed before streams existed)."""
    name = f"slotpay audit {urlsplit(settings.SITE_URL).hostname or settings.SITE_URL}"
    return f"{name}/{stream}" if stream else name


def stream_of_origin(name: str) -> str | None:
    """The stream a checkpoint's origin names (the bare one: transaction)."""
    if name == origin():
        return Stream.TRANSACTION
    for stream in STREAMS:
        if name == origin(stream):
            return stream
    return None


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


def _stamp(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def checkpoint_body(
    *,
    name: str,
    size: int,
    head_hash: str,
    at: dt.datetime,
    segment: tuple[int, int, str] | None = None,
) -> str:
    """The signed text. ``segment`` is (first position, entry count, previous
    checkpoint's hash in hex, or "" for a stream's first); without it, the four-line
    body of the checkpoints signed before streams existed."""
    body = f"{name}\n{size}\n{_b64(bytes.fromhex(head_hash))}\ntime {_stamp(at)}\n"
    if segment is None:
        return body
    first, count, previous = segment
    previous_text = _b64(bytes.fromhex(previous)) if previous else "none"
    return f"{body}first {first}\ncount {count}\nprevious {previous_text}\n"


def body_hash(checkpoint: AuditCheckpoint) -> str:
    """What the next checkpoint of the stream names as its previous one."""
    return hashlib.sha256(checkpoint.body.encode()).hexdigest()


def note(checkpoint: AuditCheckpoint) -> str:
    """The whole signed note: body, blank line, signature line."""
    name = checkpoint.body.split("\n", 1)[0]
    signed = bytes.fromhex(checkpoint.key_id) + base64.b64decode(checkpoint.signature)
    return f"{checkpoint.body}\n{SIGNATURE_PREFIX}{name} {_b64(signed)}\n"


def latest_checkpoint(stream: str) -> AuditCheckpoint | None:
    """The stream's checkpoint at the highest position (the latest signed of those)."""
    return AuditCheckpoint.objects.filter(stream=stream).order_by("-position", "-id").first()


def _sign(stream: str, key: Ed25519PrivateKey) -> AuditCheckpoint | None:
    """Sign the stream's head, under the caller's lock of the global head. None when
    nothing was appended since the stream's last checkpoint."""
    head = locked_stream_head(stream)
    previous = latest_checkpoint(stream)
    first = previous.position + 1 if previous else 1
    if head.position < first:
        return None
    name = origin(stream)
    raw_public = _raw_public(key)
    now = timezone.now()
    previous_hash = body_hash(previous) if previous else ""
    count = head.position - first + 1
    body = checkpoint_body(
        name=name,
        size=head.position,
        head_hash=head.entry_hash,
        at=now,
        segment=(first, count, previous_hash),
    )
    return AuditCheckpoint.objects.create(
        stream=stream,
        first_position=first,
        position=head.position,
        entry_hash=head.entry_hash,
        entry_count=count,
        previous_hash=previous_hash,
        created_at=now,
        body=body,
        signature=_b64(key.sign(body.encode())),
        public_key=_b64(raw_public),
        key_id=key_id(name, raw_public).hex(),
    )


def checkpoint_write(*, actor: Actor, stream: str = Stream.TRANSACTION) -> AuditCheckpoint | None:
    """Verify the chain, then sign the stream's head, closing the segment of what was
    appended since its last checkpoint, and store the checkpoint (audited). None,
    signing nothing, when nothing was appended to the stream since.

    Raises ChainBrokenError, signing nothing, when the chain does not verify. The
    (incremental) verification runs before the head is locked (holding it would
    stall integration); entries it did not walk are covered by the next verification,
    and the checkpoint's hash is checked by every walk that passes it.
    """
    report = verify_chain(full=False)
    if not report.ok:
        where = f"#{report.broken_at.sequence}" if report.broken_at else "its end"
        raise ChainBrokenError(f"the audit chain is broken at {where}: {report.reason}")
    key = _private_key()
    with transaction.atomic():
        # No integration while the segment is closed; what was committed since the
        # verification is integrated first, so that the checkpoint covers it.
        head = locked_head()
        while integrate_batch(head):
            pass
        # Writers that found the head locked meanwhile: their entries, once this commits.
        integrate_after_commit()
        checkpoint = _sign(stream, key)
        if checkpoint is None:
            return None
        # In the security stream: the record of a checkpoint opens the next segment.
        record(
            "audit.checkpoint.written",
            category=Category.SECURITY,
            actor=actor,
            target=checkpoint,
            data={
                "stream": checkpoint.stream,
                "first_position": checkpoint.first_position,
                "position": checkpoint.position,
                "entry_hash": checkpoint.entry_hash,
                "key_id": checkpoint.key_id,
            },
        )
    return checkpoint


def checkpoints_write(*, actor: Actor) -> list[AuditCheckpoint]:
    """A checkpoint of every stream that grew since its last one (the daily task)."""
    written = [checkpoint_write(actor=actor, stream=stream) for stream in STREAMS]
    return [checkpoint for checkpoint in written if checkpoint is not None]


def _export_line(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    return {
        "stream": checkpoint.stream,
        "first_position": checkpoint.first_position,
        "position": checkpoint.position,
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
    checkpoints = list(AuditCheckpoint.objects.order_by("created_at", "id"))
    lines = [json.dumps(_export_line(checkpoint), sort_keys=True) for checkpoint in checkpoints]
    up_to: dict[str, int] = {}
    for checkpoint in checkpoints:
        up_to[checkpoint.stream] = max(up_to.get(checkpoint.stream, 0), checkpoint.position)
    record(
        "audit.checkpoints.exported",
        category=Category.SECURITY,
        actor=actor,
        data={"checkpoints": len(lines), "up_to_position": up_to},
    )
    return "".join(f"{line}\n" for line in lines)


# --- Checking -------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointCheck:
    """One checkpoint checked: its signature, then the stream's entry at its position
    (or a recorded purge of it)."""

    label: str
    position: int | None
    entry_hash: str = ""
    reason: str = ""
    stream: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason


@dataclass(frozen=True)
class _Signed:
    name: str
    stream: str
    size: int
    head_hash: str
    # The extension lines after the hash, by their first word ("time", "first"...).
    extensions: dict[str, str] = field(default_factory=dict)


def _extensions(lines: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in lines:
        word, _, value = line.partition(" ")
        found.setdefault(word, value)
    return found


def _parse_body(body: str) -> _Signed:
    lines = body.split("\n")[:-1]
    if len(lines) < 3:
        raise ValueError("the body needs an origin, a size and a hash")
    name, size_text, hash_text = lines[:3]
    stream = stream_of_origin(name)
    if stream is None:
        raise ValueError(f"the origin {name!r} is not this log's")
    if not size_text.isdigit() or (size_text.startswith("0") and size_text != "0"):
        raise ValueError(f"the size {size_text!r} is not a decimal number")
    try:
        head_hash = base64.b64decode(hash_text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the head hash is not base64") from exc
    if len(head_hash) != 32:
        raise ValueError("the head hash is not 32 bytes")
    return _Signed(name, stream, int(size_text), head_hash.hex(), _extensions(lines[3:]))


def _signature_verifies(signed: bytes, name: str, body: str, trusted: dict[bytes, bytes]) -> str:
    public = trusted.get(signed[:4])
    if public is None or key_id(name, public) != signed[:4]:
        return "signed by a key this site does not trust"
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signed[4:], body.encode())
    except InvalidSignature:
        return "the signature does not verify (the text or the signature was altered)"
    return ""


def _parse(text: str, trusted: dict[bytes, bytes]) -> _Signed:
    """The body of a signed note whose signature verifies under a trusted key.

    ``trusted`` maps key ids to raw public keys. Raises ValueError saying what fails.
    """
    body, blank, signatures = text.partition("\n\n")
    if not blank:
        raise ValueError("not a signed note (no blank line before the signatures)")
    body += "\n"
    parsed = _parse_body(body)
    problem = "no signature by this origin's name"
    for line in signatures.split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            continue
        signer, _, encoded = line[len(SIGNATURE_PREFIX) :].rpartition(" ")
        if signer != parsed.name:
            continue  # a witness's or another key's: skipped, as C2SP says
        try:
            signed = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            problem = "the signature is not base64"
            continue
        problem = _signature_verifies(signed, parsed.name, body, trusted)
        if not problem:
            return parsed
    raise ValueError(problem)


def trusted_keys(extra_public_keys: Iterable[str] = ()) -> dict[bytes, bytes]:
    """Key ids to public keys: the configured key's under every origin of this log,
    plus the retired ones (AUDIT_CHECKPOINT_RETIRED_PUBLIC_KEYS) and
    ``extra_public_keys`` (base64; an older key after a rotation) under them."""
    keys = [_raw_public(_private_key())]
    for encoded in [*settings.AUDIT_CHECKPOINT_RETIRED_PUBLIC_KEYS, *extra_public_keys]:
        raw = base64.b64decode(encoded)
        if len(raw) != 32:
            raise ValueError("an Ed25519 public key is 32 bytes")
        keys.append(raw)
    names = [origin(), *(origin(stream) for stream in STREAMS)]
    return {key_id(name, raw): raw for name in names for raw in keys}


def _stored_fields_problem(checkpoint: AuditCheckpoint, signed: _Signed) -> str:
    """The readable columns must say what the signature covers."""
    stored = (checkpoint.stream, checkpoint.position, checkpoint.entry_hash)
    if (signed.stream, signed.size, signed.head_hash) != stored:
        return "its stored stream, position or hash are not the signed ones"
    if "first" not in signed.extensions:
        return ""  # signed before streams existed: no segment lines
    previous = checkpoint.previous_hash
    segment = (
        str(checkpoint.first_position),
        str(checkpoint.entry_count),
        _b64(bytes.fromhex(previous)) if previous else "none",
    )
    extensions = signed.extensions
    if (extensions.get("first"), extensions.get("count"), extensions.get("previous")) != segment:
        return "its stored segment (first position, count, previous) is not the signed one"
    return ""


def signature_problem(checkpoint: AuditCheckpoint, trusted: dict[bytes, bytes]) -> str:
    """Why a stored checkpoint's signature or readable fields do not hold ("" when
    they do). The chain is not consulted: verification compares the hash itself."""
    try:
        text = note(checkpoint)
    except ValueError:  # binascii.Error included
        return "its stored signature or key id is not readable"
    try:
        signed = _parse(text, trusted)
    except ValueError as exc:
        return str(exc)
    return _stored_fields_problem(checkpoint, signed)


def _against_chain(signed: _Signed) -> str:
    if signed.size == 0:
        return ""
    stored = (
        AuditEntry.objects.filter(stream=signed.stream, position=signed.size)
        .values_list("entry_hash", flat=True)
        .first()
    )
    if stored is None:
        if purged_through(signed.stream) >= signed.size:
            return ""  # purged after its retention: the checkpoint still says what was
        return f"the {signed.stream} stream has no entry at {signed.size} (entries were removed)"
    if stored != signed.head_hash:
        return (
            f"the {signed.stream} stream's entry at {signed.size} does not have the hash "
            "this checkpoint signed (the chain was rewritten)"
        )
    return ""


def check_note(text: str, *, label: str, trusted: dict[bytes, bytes]) -> CheckpointCheck:
    try:
        signed = _parse(text, trusted)
    except ValueError as exc:
        return CheckpointCheck(label, None, reason=str(exc))
    return CheckpointCheck(
        label, signed.size, signed.head_hash, _against_chain(signed), signed.stream
    )


def checkpoint_check(checkpoint: AuditCheckpoint) -> CheckpointCheck:
    """A stored checkpoint checked against the configured key and the chain."""
    trusted = trusted_keys()
    problem = signature_problem(checkpoint, trusted)
    if problem:
        return CheckpointCheck(str(checkpoint), checkpoint.position, reason=problem)
    return check_note(note(checkpoint), label=str(checkpoint), trusted=trusted)


def checkpoints_verify(
    lines: Iterable[str], *, extra_public_keys: Iterable[str] = ()
) -> list[CheckpointCheck]:
    """Check every checkpoint of an export (JSONL, as checkpoints_export writes it):
    its signature under a trusted key, its readable fields against the signed text,
    and the stream's entry at its position against the hash it signed (or a
    recorded purge of that position)."""
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
        # Exports written before streams existed call the position "sequence".
        position = exported.get("position", exported.get("sequence"))
        if check.ok and (position, exported.get("entry_hash")) != (
            check.position,
            check.entry_hash,
        ):
            check = CheckpointCheck(
                label, check.position, check.entry_hash, "the line's fields are not the signed ones"
            )
        checks.append(check)
    return checks
