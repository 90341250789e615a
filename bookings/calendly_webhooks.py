"""Calendly's webhooks as the endpoint checks them: the signature and the envelope.

Registered with ``webhooks.providers`` by ``BookingsConfig.ready()``; what each event
does is in ``webhook_handlers.py``. The endpoint's own checks (source address, size,
content type, JSON) run before and between these.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from bookings.calendly import uuid_from_uri
from webhooks.models import Provider
from webhooks.providers import WebhookProvider, setting
from webhooks.schemas import Envelope, Match, Optional, SchemaError, Timestamp, validate
from webhooks.verification import Rejected, check_timestamp, signature_parts

ENVELOPE = {
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
PAYLOADS: dict[str, Mapping[str, Any]] = {
    "invitee.created": _INVITEE,
    "invitee.canceled": _INVITEE,
    "invitee_no_show.created": {**_INVITEE, "no_show": {"uri": str, "created_at": Timestamp}},
    "invitee_no_show.deleted": _INVITEE,
}


def verify_signature(body: bytes, header: str | None, keys: Sequence[str]) -> None:
    """HMAC-SHA256 of ``"<t>." + body`` under each signing key, against each ``v1``."""
    timestamp, signatures = signature_parts(header)
    signed = f"{timestamp}.".encode() + body
    expected = [hmac.new(key.encode(), signed, hashlib.sha256).hexdigest() for key in keys]
    # Every pair is compared (no early exit) and each comparison is constant-time.
    matches = [hmac.compare_digest(e, s) for e in expected for s in signatures]
    if not any(matches):
        raise Rejected("signature_mismatch")
    check_timestamp(timestamp, now=time.time())


def envelope(data: Any) -> Envelope:
    """Validate; the dedup key is the event name and the invitee, plus, for no-shows
    (which can be marked, unmarked and marked again), the mark's own id or time."""
    validate(ENVELOPE, data)
    event_type = data["event"]
    spec = PAYLOADS.get(event_type)
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


CALENDLY = WebhookProvider(
    name=Provider.CALENDLY,
    signature_header="Calendly-Webhook-Signature",
    secrets=setting("CALENDLY_WEBHOOK_SIGNING_KEYS"),
    path_token=setting("CALENDLY_WEBHOOK_PATH_TOKEN"),
    ip_allowlist=setting("CALENDLY_WEBHOOK_IP_ALLOWLIST"),
    verify=verify_signature,
    envelope=envelope,
)
