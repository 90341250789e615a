"""Canonical serialisation and hashing of audit entries.

Two formats of ``entry_hash``, told apart by ``leaf_hash``:

- entries written before the sequencer (``leaf_hash`` empty): ``entry_hash`` is the
  digest of ``HASHED_FIELDS``, the chain fields (``sequence``, ``previous_hash``)
  among the contents;
- entries integrated by the sequencer (audit/sequencer.py): the writer stores the
  ``leaf_hash`` of the contents (``LEAF_FIELDS``, known before the entry has a place),
  and the sequencer links it: ``entry_hash = linked_hash(leaf, sequence, stream,
  position, previous_hash)``. Verification recomputes the leaf from the contents, so
  an edit of either the contents or the stored leaf breaks the entry's hash.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import uuid
from collections.abc import Sequence
from typing import Any

# What an entry says, whatever its place: both hashes cover it.
CONTENT_FIELDS = (
    "created_at",
    "actor_type",
    "actor_id",
    "action",
    "category",
    "target_type",
    "target_id",
    "data",
    "request_id",
    "ip",
    "personal_data_digest",
)
HASHED_FIELDS = ("sequence", *CONTENT_FIELDS, "previous_hash")

# What the writer knows before the sequencer gives the entry its place.
LEAF_FIELDS = ("stream", *CONTENT_FIELDS)
LINK_PREFIX = b"slotpay-audit-entry/2\n"


def jsonable(value: Any) -> Any:
    """Reduce a value to what survives a JSON/jsonb round trip unchanged.

    Floats become strings (jsonb may print them differently), as do decimals,
    datetimes and UUIDs; keys become strings.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item) for item in value]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, float | decimal.Decimal | uuid.UUID):
        return str(value)
    raise TypeError(f"audit data cannot hold {type(value).__name__}")


# One encoder for every call: json.dumps builds a new one per call when given options.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
# A string as _CANONICAL writes it (ensure_ascii off: the C function when there is one).
_text = json.encoder.encode_basestring
# _CANONICAL's own C encoder, built once: JSONEncoder.encode builds one per call, which
# cost as much as the encoding of a small entry's data. Same options, so the same
# bytes; no cycle check (markers None), which nothing canonical needs: its values come
# from jsonable() or json.loads, which never build a cycle.
_make_c_encoder: Any = getattr(json.encoder, "c_make_encoder", None)  # not in the stubs
_c_encode = (
    _make_c_encoder(
        None,
        _CANONICAL.default,
        _text,
        None,
        _CANONICAL.key_separator,
        _CANONICAL.item_separator,
        _CANONICAL.sort_keys,
        _CANONICAL.skipkeys,
        _CANONICAL.allow_nan,
    )
    if _make_c_encoder is not None
    else None
)


def _canonical_text(value: Any) -> str:
    if _c_encode is None:  # pragma: no cover (CPython has the C encoder)
        return _CANONICAL.encode(value)
    return "".join(_c_encode(value, 0))


def canonical(value: Any) -> bytes:
    return _canonical_text(value).encode()


def digest(value: Any) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()


def entry_hash(fields: dict[str, Any]) -> str:
    payload = {name: fields[name] for name in HASHED_FIELDS}
    payload["created_at"] = _utc_text(payload["created_at"])
    return digest(payload)


def _utc_text(created_at: dt.datetime | str) -> str:
    """The time as hashed; verification may read it already in this form."""
    if isinstance(created_at, str):
        return created_at
    return created_at.astimezone(dt.UTC).isoformat(timespec="microseconds")


def leaf_hash(fields: dict[str, Any]) -> str:
    """The digest of an entry's contents (``LEAF_FIELDS``), without its place."""
    return leaf_hash_of_values([fields[name] for name in LEAF_FIELDS])


def leaf_hash_of_values(values: Sequence[Any]) -> str:
    """``leaf_hash`` of the values of ``LEAF_FIELDS``, in that order (what a walk
    reads, without building a dict per entry twice)."""
    return hashlib.sha256(_leaf_text(values).encode()).hexdigest()


def _leaf_text(values: Sequence[Any]) -> str:
    """``canonical`` of the leaf's payload, written out key by key in sorted order
    rather than built as a dict and sorted: every record() and every walked entry
    hashes one, and this takes under half the time. Byte for byte the same text
    (tests/audit/test_canonical.py compares them); a value that is not a string
    where one is expected (or None for ``ip``) goes the general way."""
    (
        stream,
        created_at,
        actor_type,
        actor_id,
        action,
        category,
        target_type,
        target_id,
        data,
        request_id,
        ip,
        personal_data_digest,
    ) = values
    created = _utc_text(created_at)
    try:
        return (
            f'{{"action":{_text(action)},"actor_id":{_text(actor_id)},'
            f'"actor_type":{_text(actor_type)},"category":{_text(category)},'
            f'"created_at":{_text(created)},"data":{_canonical_text(data)},'
            f'"ip":{"null" if ip is None else _text(ip)},'
            f'"personal_data_digest":{_text(personal_data_digest)},'
            f'"request_id":{_text(request_id)},"stream":{_text(stream)},'
            f'"target_id":{_text(target_id)},"target_type":{_text(target_type)}}}'
        )
    except TypeError:  # not a string (the encoder writes any str as _text does)
        payload = dict(zip(LEAF_FIELDS, values, strict=True))
        payload["created_at"] = created
        return _canonical_text(payload)


# _leaf_text unpacks the values in this order and writes the keys sorted.
if LEAF_FIELDS != (
    "stream",
    "created_at",
    "actor_type",
    "actor_id",
    "action",
    "category",
    "target_type",
    "target_id",
    "data",
    "request_id",
    "ip",
    "personal_data_digest",
):  # pragma: no cover
    raise ImportError("audit.chain._leaf_text no longer matches LEAF_FIELDS")


def linked_hash(leaf: str, sequence: int, stream: str, position: int, previous: str) -> str:
    """An integrated entry's ``entry_hash``: its leaf at its place, linked to the
    hash of the entry before it in its stream."""
    text = f"{sequence}\n{stream}\n{position}\n{previous}\n{leaf}"
    return hashlib.sha256(LINK_PREFIX + text.encode()).hexdigest()
