"""Calendly's own example payloads parse, quirks included."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bookings import calendly

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "calendly"


def load(name):
    return json.loads((FIXTURES / name).read_text())


def test_the_documented_event_parses():
    event = calendly.parse_scheduled_event(load("api.get-event.200.json")["resource"])

    assert event.uuid == "GBGBDCAADAEDCRZ2"
    assert event.start_time == datetime(2019, 8, 24, 14, 15, 22, tzinfo=UTC)
    assert event.location == {"type": "physical", "location": "Calendly Office"}
    assert event.cancellation is None


def test_a_canceled_invitee_parses():
    invitee = calendly.parse_invitee(load("api.get-event-invitee.200.canceled.json")["resource"])

    assert invitee.status == "canceled"
    assert invitee.cancellation.canceler_type == "invitee"
    assert invitee.cancellation.reason == "Meeting Conflict"
    assert invitee.cancellation.created_at is None  # missing in this example
    assert invitee.first_name is None
    assert invitee.tracking == calendly.Tracking()


@pytest.mark.parametrize(
    "name",
    [
        "webhook.invitee.created.docs.json",
        "webhook.invitee.canceled.docs.json",
        "webhook.invitee_no_show.created.docs.json",
        "webhook.invitee.created.openapi-legacy.json",
        "webhook.invitee.canceled.openapi-legacy.json",
    ],
)
def test_webhook_payloads_parse_as_invitees(name):
    invitee = calendly.parse_invitee(load(name)["payload"])

    assert invitee.uuid
    assert invitee.event_uri.startswith("https://")


def test_a_no_show_parses():
    invitee = calendly.parse_invitee(load("payload-only.invitee.full-schema.active.docs.json"))

    assert invitee.no_show.uri.endswith("/invitee_no_shows/6ee96ed4-83a3-4966-a278-cd19b3c02e09")
    assert (invitee.first_name, invitee.last_name) == ("John", "Doe")
