"""Event types and bookings as the paid-booking flow records them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from accounts.models import Builder
from bookings.models import Booking, EventType


def make_event_type(builder: Builder, **fields: Any) -> EventType:
    values: dict[str, Any] = {
        "calendly_event_type_uri": f"https://api.calendly.com/event_types/ET{builder.pk}",
        "scheduling_url": f"https://calendly.com/{builder.slug}/consult",
        "title": "Consultation",
        "duration_minutes": 60,
        "price_amount": 8000,
        "currency": "eur",
        **fields,
    }
    return EventType.objects.create(builder=builder, **values)


def make_booking(event_type: EventType, client: Any, number: int = 1, **fields: Any) -> Booking:
    start = fields.pop("start_at", timezone.now() + timedelta(days=5))
    uri = f"https://api.calendly.com/scheduled_events/E{number}"
    values: dict[str, Any] = {
        "calendly_invitee_uri": f"{uri}/invitees/I{number}",
        "calendly_event_uri": uri,
        "start_at": start,
        "end_at": start + timedelta(minutes=event_type.duration_minutes),
        "invitee_time_zone": "Europe/Berlin",
        "invitee_name": "Clara Client",
        "invitee_email": "clara@client.example",
        "price_amount": event_type.price_amount,
        "currency": event_type.currency,
        **fields,
    }
    return Booking.objects.create(
        client=client, builder=event_type.builder, event_type=event_type, **values
    )
