"""Calendly's webhooks: the signature and the envelope, and our subscriptions.

Registered with ``webhooks.providers`` by ``BookingsConfig.ready()``; what each event
does is in ``webhook_handlers.py``. The endpoint's own checks (source address, size,
content type, JSON) run before and between these.

Calendly disables a subscription whose deliveries keep failing (its ``state``
becomes ``disabled``) and never enables it again: it must be recreated.
:func:`subscriptions_repair` finds ours through the API and recreates the disabled
ones (bookings/watchdogs.py runs it every five minutes and alerts).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction

import audit
from bookings.calendly import (
    CalendlyClient,
    CalendlyError,
    Forbidden,
    WebhookSubscription,
    uuid_from_uri,
)
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


# --- Our subscriptions -------------------------------------------------------------------

logger = logging.getLogger(__name__)

ACTOR = "bookings.calendly_subscriptions"
DISABLED = "disabled"


def callback_prefix() -> str:
    """Where every subscription of ours points: our Calendly endpoint under any path
    token (an earlier token's subscription is ours too, and just as broken)."""
    return f"{settings.SITE_URL}/webhooks/calendly/"


@dataclass(frozen=True)
class Recreated:
    disabled: WebhookSubscription
    created: WebhookSubscription


@dataclass(frozen=True)
class NotRecreated:
    disabled: WebhookSubscription
    error: str  # the exception's type: its text may name our callback URL


@dataclass
class SubscriptionsReport:
    active: list[WebhookSubscription] = field(default_factory=list)
    recreated: list[Recreated] = field(default_factory=list)
    failed: list[NotRecreated] = field(default_factory=list)


def subscriptions_ours(client: CalendlyClient) -> list[WebhookSubscription]:
    """Our account's subscriptions (organization scope, when the token may list
    them, and the token's user's) that post to our endpoint."""
    me = client.current_user()
    found = client.list_webhook_subscriptions(me.current_organization, "user", user=me.uri)
    # Not an organization admin: only the user's own can be ours.
    with contextlib.suppress(Forbidden):
        found += client.list_webhook_subscriptions(me.current_organization, "organization")
    prefix = callback_prefix()
    unique = {subscription.uuid: subscription for subscription in found}
    return [s for s in unique.values() if s.callback_url.startswith(prefix)]


def subscriptions_repair(*, client: CalendlyClient) -> SubscriptionsReport:
    """Recreate each disabled subscription of ours: same events, scope and callback
    URL, signed with our first CALENDLY_WEBHOOK_SIGNING_KEYS; the disabled one is
    deleted first (Calendly refuses two subscriptions of one URL). Each audited.

    Events sent while a subscription was disabled are lost to it: reconciliation
    finds them. An API failure while listing propagates (the watchdog reports it).
    """
    report = SubscriptionsReport()
    for subscription in subscriptions_ours(client):
        if subscription.state != DISABLED:
            report.active.append(subscription)
            continue
        try:
            created = subscription_recreate(client=client, disabled=subscription)
        except CalendlyError as exc:
            report.failed.append(NotRecreated(subscription, type(exc).__name__))
        else:
            report.recreated.append(Recreated(subscription, created))
    return report


def subscription_recreate(
    *, client: CalendlyClient, disabled: WebhookSubscription
) -> WebhookSubscription:
    """Delete ``disabled`` and create its like; the provider first, then one short
    audited transaction per step that happened (a failed create leaves the deletion
    recorded, and nothing at Calendly: the next run reports it missing)."""
    client.delete_webhook_subscription(disabled.uri)
    facts = {
        "disabled": disabled.uuid,
        "events": list(disabled.events),
        "scope": disabled.scope,
    }
    try:
        created = client.create_webhook_subscription(
            disabled.callback_url,
            disabled.events,
            organization=disabled.organization,
            user=disabled.user if disabled.scope == "user" else None,
            scope=disabled.scope,
        )
    except CalendlyError as exc:
        with transaction.atomic():
            audit.record(
                "bookings.calendly.subscription_recreate_failed",
                category=audit.Category.SECURITY,
                actor=ACTOR,
                target=("calendly.webhook_subscription", disabled.uuid),
                data={**facts, "error": type(exc).__name__},
            )
        logger.error(
            "calendly.subscription.recreate_failed",
            extra={"subscription": disabled.uuid, "error": type(exc).__name__},
        )
        raise
    with transaction.atomic():
        audit.record(
            "bookings.calendly.subscription_recreated",
            category=audit.Category.SECURITY,
            actor=ACTOR,
            target=("calendly.webhook_subscription", created.uuid),
            data={**facts, "created": created.uuid},
        )
    logger.warning(
        "calendly.subscription.recreated",
        extra={"subscription": disabled.uuid, "replacement": created.uuid},
    )
    return created
