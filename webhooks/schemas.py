"""Strict validation of the parts of each provider's envelope that we rely on.

A spec is a dict of key to rule: a type, a :class:`Match` (a string matching a
pattern), a nested spec, or any of these wrapped in :class:`Optional`. Keys the
spec does not name are ignored (providers add fields); a required key that is
missing, null or of the wrong type fails with the path to it, e.g.
``data.object.id: missing``. From a valid envelope the provider's event type and
our dedup key are derived.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bookings.calendly import uuid_from_uri


class SchemaError(ValueError):
    """The body is JSON but not an event we can trust the shape of."""


@dataclass(frozen=True)
class Match:
    pattern: str

    def check(self, value: Any) -> bool:
        return isinstance(value, str) and re.fullmatch(self.pattern, value) is not None


@dataclass(frozen=True)
class Optional:
    rule: Any


class _Timestamp:
    """An ISO 8601 time with a zone (Calendly's ``2020-11-23T17:51:19.000000Z``)."""

    @staticmethod
    def check(value: Any) -> bool:
        if not isinstance(value, str):
            return False
        try:
            return datetime.fromisoformat(value).tzinfo is not None
        except ValueError:
            return False


Timestamp = _Timestamp()


def validate(spec: Mapping[str, Any], value: Any, path: str = "") -> None:
    if not isinstance(value, dict):
        raise SchemaError(f"{path or 'body'}: expected an object")
    for key, declared in spec.items():
        where = f"{path}.{key}" if path else key
        optional = isinstance(declared, Optional)
        rule = declared.rule if optional else declared
        item = value.get(key)
        if item is None:
            if optional:
                continue
            raise SchemaError(f"{where}: missing")
        if isinstance(rule, dict):
            validate(rule, item, where)
        elif isinstance(rule, type):
            # bool is an int in Python; a JSON true is not a timestamp.
            if not isinstance(item, rule) or (rule is int and isinstance(item, bool)):
                raise SchemaError(f"{where}: expected {rule.__name__}")
        elif not rule.check(item):
            raise SchemaError(f"{where}: unexpected value")


# --- Stripe ---------------------------------------------------------------------------

STRIPE_EVENT = {
    "id": Match(r"evt_[A-Za-z0-9_]{1,250}"),
    "object": Match("event"),
    "type": Match(r"[a-z_]+(\.[a-z_]+)+"),
    "created": int,
    "livemode": bool,
    "data": {"object": {"id": Match(r"[A-Za-z0-9_]{1,255}"), "object": str}},
}


@dataclass(frozen=True)
class Envelope:
    event_id: str  # the dedup key: Stripe's id, or derived for Calendly
    event_type: str


def stripe_envelope(data: Any) -> Envelope:
    validate(STRIPE_EVENT, data)
    return Envelope(event_id=data["id"], event_type=data["type"])


# --- Calendly ---------------------------------------------------------------------------

CALENDLY_ENVELOPE = {
    "event": Match(r"[a-z_]+\.[a-z_]+"),
    "created_at": Timestamp,
    "payload": dict,
}
_INVITEE = {
    "uri": Match(r"https?://\S+/invitees/[A-Za-z0-9_-]+"),
    "email": str,
    "status": Match("active|canceled"),
    "rescheduled": Optional(bool),
    "old_invitee": Optional(str),
    "new_invitee": Optional(str),
    "scheduled_event": Optional({"uri": str}),
    "tracking": Optional(dict),
    "created_at": Optional(Timestamp),
}
# What each event type we may subscribe to must carry, beyond the envelope.
CALENDLY_PAYLOADS: dict[str, Mapping[str, Any]] = {
    "invitee.created": _INVITEE,
    "invitee.canceled": _INVITEE,
    "invitee_no_show.created": {**_INVITEE, "no_show": {"uri": str, "created_at": Timestamp}},
    "invitee_no_show.deleted": _INVITEE,
}


def calendly_envelope(data: Any) -> Envelope:
    """Validate; the dedup key is the event name and the invitee, plus, for no-shows
    (which can be marked, unmarked and marked again), the mark's own id or time."""
    validate(CALENDLY_ENVELOPE, data)
    event_type = data["event"]
    spec = CALENDLY_PAYLOADS.get(event_type)
    if spec is None:
        # A type we hold no schema for: the same body always gives the same key.
        digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
        return Envelope(event_id=f"{event_type}:{digest}", event_type=event_type)
    payload = data["payload"]
    validate(spec, payload, "payload")
    try:
        key = f"{event_type}:{uuid_from_uri(payload['uri'], 'invitees')}"
        if event_type == "invitee_no_show.created":
            key += ":" + uuid_from_uri(payload["no_show"]["uri"], "invitee_no_shows")
    except ValueError as exc:
        raise SchemaError(f"payload: {exc}") from exc
    if event_type == "invitee_no_show.deleted":
        key += ":" + data["created_at"]
    return Envelope(event_id=key, event_type=event_type)
