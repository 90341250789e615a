"""Is this delivery genuine? Checked in a fixed order, before anything is parsed.

1. source address against the provider's optional CIDR allowlist (the client
   address as ``core.http.client_ip`` reads it: X-Forwarded-For only behind
   TRUSTED_PROXY_COUNT proxies);
2. body size (WEBHOOK_MAX_BODY_BYTES, refused before the body is read when the
   request declares its length);
3. content type (JSON);
4. signature, with every configured secret (rotation), by the provider's own
   ``verify`` (``webhooks.providers``: Stripe's in ``payments.stripe_webhooks``,
   Calendly's in ``bookings.calendly_webhooks``); the header is parsed strictly
   first (see :func:`signature_parts`);
5. timestamp: at most WEBHOOK_TOLERANCE_SECONDS old, 60 s in the future
   (:func:`check_timestamp`, called by the provider's ``verify``);
6. JSON (at most MAX_JSON_DEPTH deep), then the provider's envelope, validated with
   ``webhooks.schemas``, which gives the event type and the dedup key.

Each failure raises :class:`Rejected` with a short reason for logs and counters;
the requester only ever sees a generic 400. Nothing else may escape :func:`verify`:
whatever a requester sends, the answer is that 400, never a 500.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from core.http import client_ip
from webhooks.providers import WebhookProvider
from webhooks.schemas import Envelope, SchemaError

# A signature header is ``t=`` and one ``v1=`` per signing secret (two while one rolls):
# well under this. Ten digits of Unix time last until 2286; twelve is ample.
MAX_SIGNATURE_HEADER = 2048
MAX_TIMESTAMP_DIGITS = 12
# Provider events nest about ten levels; json.loads itself gives up near a thousand,
# and what parses must still survive the schema, json.dumps and the worker.
MAX_JSON_DEPTH = 64


class Rejected(Exception):  # noqa: N818 (the outcome, as the view reports it)
    """``reason`` is a short code (counted); ``detail`` never quotes the body."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: the raw body, what it parsed to, and its dedup key."""

    provider: str
    body: str
    data: dict[str, Any]
    event_id: str
    event_type: str


def check_source(provider: WebhookProvider, request: HttpRequest) -> None:
    networks = provider.ip_allowlist()
    if not networks:
        return
    address = client_ip(request)
    if address is None:
        raise Rejected("ip_not_allowed")
    ip = ipaddress.ip_address(address)
    if not any(ip in network for network in networks):
        raise Rejected("ip_not_allowed")


def read_body(request: HttpRequest) -> bytes:
    limit = settings.WEBHOOK_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError as exc:
        raise Rejected("bad_content_length") from exc
    if declared > limit:
        raise Rejected("body_too_large")
    body = request.read(limit + 1)
    if len(body) > limit:
        raise Rejected("body_too_large")
    if not body:
        raise Rejected("empty_body")
    return body


def check_content_type(request: HttpRequest) -> None:
    if request.content_type != "application/json":
        raise Rejected("unsupported_content_type")
    charset = (request.content_params or {}).get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise Rejected("unsupported_content_type")


def signature_parts(header: str | None) -> tuple[int, list[str]]:
    """``t=<unix>,v1=<hex>[,v1=<hex>...]`` → (t, [v1, ...]); anything else is refused.

    Strict, because what passes goes on to code that is not: ``int()`` refuses more
    than 4,300 digits and reads Arabic-Indic or full-width digits (``isdigit()`` also
    admits superscripts, which it cannot read), and ``hmac.compare_digest`` raises on
    non-ASCII strings. So: printable ASCII only, bounded, exactly one ``t`` of ASCII
    digits (stripe-python would read the first of two, this function the last).
    Raises nothing but :class:`Rejected`.
    """
    header = header or ""
    if len(header) > MAX_SIGNATURE_HEADER or not (header.isascii() and header.isprintable()):
        raise Rejected("signature_malformed")
    timestamps, signatures = [], []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            timestamps.append(value)
        elif key == "v1" and value:
            signatures.append(value)
    if len(timestamps) != 1 or not signatures:
        raise Rejected("signature_malformed")
    (value,) = timestamps
    # isdigit() on ASCII text is exactly 0-9 (the header is ASCII by now).
    if not (value.isdigit() and len(value) <= MAX_TIMESTAMP_DIGITS):
        raise Rejected("signature_malformed")
    return int(value), signatures


def check_timestamp(timestamp: int, *, now: float) -> None:
    if timestamp < now - settings.WEBHOOK_TOLERANCE_SECONDS:
        raise Rejected("timestamp_stale")
    if timestamp > now + settings.WEBHOOK_FUTURE_TOLERANCE_SECONDS:
        raise Rejected("timestamp_in_future")


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` nests containers more than ``limit`` deep (without recursion)."""
    level: list[Any] = [value]
    for _ in range(limit):
        children: list[Any] = []
        for item in level:
            if isinstance(item, dict):
                children.extend(v for v in item.values() if isinstance(v, dict | list))
            elif isinstance(item, list):
                children.extend(v for v in item if isinstance(v, dict | list))
        if not children:
            return False
        level = children
    return True


def check_envelope(provider: WebhookProvider, data: Any) -> Envelope:
    try:
        return provider.envelope(data)
    except SchemaError as exc:
        raise Rejected("schema_invalid", str(exc)) from exc


def verify(provider: WebhookProvider, request: HttpRequest) -> Delivery:
    """Run every check on ``request``; return the verified delivery or raise Rejected."""
    check_source(provider, request)
    body = read_body(request)
    check_content_type(request)
    header = request.headers.get(provider.signature_header)
    provider.verify(body, header, provider.secrets())
    try:
        text = body.decode("utf-8")
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Rejected("malformed_json") from exc
    except RecursionError as exc:
        raise Rejected("json_too_deep") from exc
    if _depth_exceeds(data, MAX_JSON_DEPTH):
        raise Rejected("json_too_deep")
    envelope = check_envelope(provider, data)
    return Delivery(
        provider=provider.name,
        body=text,
        data=data,
        event_id=envelope.event_id,
        event_type=envelope.event_type,
    )
