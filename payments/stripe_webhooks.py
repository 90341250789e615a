"""Stripe's webhooks as the endpoint checks them: the signature and the envelope.

Registered with ``webhooks.providers`` by ``PaymentsConfig.ready()``; what each event
does is in ``bookings/webhook_handlers.py`` (bookings orchestrates both providers).
The endpoint's own checks (source address, size, content type, JSON) run before and
between these.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from django.conf import settings

from payments import stripe_gateway
from webhooks.models import Provider
from webhooks.providers import WebhookProvider, setting
from webhooks.schemas import Envelope, Match, validate
from webhooks.verification import Rejected, check_timestamp, signature_parts

EVENT = {
    "id": Match(r"evt_[A-Za-z0-9_]{1,250}"),
    "object": Match("event"),
    "type": Match(r"[a-z_]+(\.[a-z_]+)+"),
    "created": int,
    "livemode": bool,
    "data": {"object": {"id": Match(r"[A-Za-z0-9_]{1,255}"), "object": str}},
}


def verify_signature(body: bytes, header: str | None, secrets: Sequence[str]) -> None:
    """stripe-python's check with every secret, after our strict parse of the header
    (see ``signature_parts``); the future timestamps it lets through are refused here."""
    timestamp, _ = signature_parts(header)
    try:
        stripe_gateway.verify_webhook_signature(
            body, header or "", secrets, tolerance=settings.WEBHOOK_TOLERANCE_SECONDS
        )
    except stripe_gateway.WebhookSignatureInvalid as exc:
        raise Rejected(exc.reason) from exc
    except UnicodeDecodeError as exc:
        raise Rejected("malformed_body") from exc
    check_timestamp(timestamp, now=time.time())


def envelope(data: Any) -> Envelope:
    """Stripe's event id is the dedup key. A test-mode event under a live key (or the
    reverse) is refused: it comes from the other world's account."""
    validate(EVENT, data)
    if data["livemode"] != stripe_gateway.live_mode():
        raise Rejected("livemode_mismatch")
    return Envelope(event_id=data["id"], event_type=data["type"])


STRIPE = WebhookProvider(
    name=Provider.STRIPE,
    signature_header="Stripe-Signature",
    secrets=setting("STRIPE_WEBHOOK_SECRETS"),
    path_token=setting("STRIPE_WEBHOOK_PATH_TOKEN"),
    ip_allowlist=setting("STRIPE_WEBHOOK_IP_ALLOWLIST"),
    verify=verify_signature,
    envelope=envelope,
)
