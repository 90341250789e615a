"""Canonical serialisation and hashing of audit entries."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import uuid
from typing import Any

HASHED_FIELDS = (
    "sequence",
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
    "previous_hash",
)


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


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(value: Any) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()


def entry_hash(fields: dict[str, Any]) -> str:
    payload = {name: fields[name] for name in HASHED_FIELDS}
    created_at = payload["created_at"]
    payload["created_at"] = created_at.astimezone(dt.UTC).isoformat(timespec="microseconds")
    return digest(payload)
