"""Calendly's webhook signature, for signing sandbox payloads and test fixtures.

``Calendly-Webhook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>." + body)>``;
sandbox.delivery signs every Calendly delivery this way.
"""

from __future__ import annotations

import hashlib
import hmac


def calendly_signature(key: str, body: bytes, timestamp: int) -> str:
    """The header value Calendly would send with ``body`` at ``timestamp``."""
    digest = hmac.new(key.encode(), f"{int(timestamp)}.".encode() + body, hashlib.sha256)
    return f"t={int(timestamp)},v1={digest.hexdigest()}"
