"""One invitee, one booking, however Calendly writes the invitee's URI.

Calendly's own payloads name the same invitee on ``api.calendly.com`` and on
``calendly.com/api/v2/`` (tests/fixtures/calendly/README.md): bookings are keyed by
the invitee's UUID, so every path finds the one booking.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from accounts.models import Builder
from bookings import calendly, services
from bookings.models import Booking
from tests.bookings.factories import make_event_type

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "calendly"
FORMS = [
    "https://api.calendly.com/scheduled_events/EVT1/invitees/INV1",
    "https://calendly.com/api/v2/scheduled_events/EVT1/invitees/INV1",
    "https://api.calendly.com/api/v2/scheduled_events/EVT1/invitees/INV1/",
]


def _invitee_and_event(uri: str) -> tuple[calendly.Invitee, calendly.ScheduledEvent]:
    invitee = calendly.parse_invitee(
        json.loads((FIXTURES / "api.get-event-invitee.200.active.json").read_text())["resource"]
    )
    event = calendly.parse_scheduled_event(
        json.loads((FIXTURES / "api.get-event.200.json").read_text())["resource"]
    )
    # The documentation's example lasts no time at all; ours end after they start.
    return replace(invitee, uri=uri), replace(event, end_time=event.start_time + timedelta(hours=1))


@pytest.fixture
def event_type(owner):
    _, event = _invitee_and_event(FORMS[0])
    return make_event_type(
        Builder.objects.get(slug="olives-studio"),
        calendly_event_type_uri=event.event_type_uri,
    )


def test_every_form_of_an_invitee_uri_finds_the_one_booking(event_type):
    recorded = [
        services.booking_record_invitee(invitee=invitee, event=event, source="webhook")
        for invitee, event in map(_invitee_and_event, FORMS)
    ]

    assert Booking.objects.count() == 1
    assert {b.pk for b in recorded} == {Booking.objects.get().pk}
    for uri in FORMS:
        assert Booking.objects.for_invitee(uri).get() == recorded[0]
    assert Booking.objects.for_invitee("INV1").get() == recorded[0]


def test_a_reschedule_names_the_old_invitee_in_another_form(event_type):
    invitee, event = _invitee_and_event(FORMS[0])
    old = services.booking_record_invitee(invitee=invitee, event=event, source="webhook")
    new_invitee, event = _invitee_and_event(
        "https://api.calendly.com/scheduled_events/EVT2/invitees/INV2"
    )

    new = services.booking_record_invitee(
        invitee=replace(new_invitee, old_invitee=FORMS[1]), event=event, source="x"
    )

    old.refresh_from_db()
    assert old.rescheduled_to == new
