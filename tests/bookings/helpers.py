"""Making sandbox bookings for the client tests, as an invitee would."""

from __future__ import annotations

from typing import Any

from sandbox.calendly_sandbox import services
from sandbox.calendly_sandbox.models import EventType, Invitee
from sandbox.calendly_sandbox.resources import Urls

INVITEE_EMAIL = "clara@client.example"


def book(live_server: Any, event_type: EventType, *, slot: int = 0, **extra: Any) -> Invitee:
    return services.invitee_book(
        event_type=event_type,
        start=services.open_slots(event_type)[slot],
        name="Clara Client",
        email=INVITEE_EMAIL,
        invitee_timezone="America/New_York",
        answer="Pricing",
        tracking={"utm_source": "slotpay", "utm_content": "intent-token-123"},
        urls=Urls(site=live_server.url),
        **extra,
    )
