"""Calendly's data-compliance deletion in the sandbox, as Calendly describes it: the
invitee's name and answers deleted, the email turned into ``…@deleted.calendly.com``;
the copies in the webhook deliveries go too. Other invitees are untouched."""

from __future__ import annotations

import pytest

from sandbox.calendly_sandbox import services
from sandbox.calendly_sandbox.models import EventType, Invitee
from sandbox.calendly_sandbox.resources import Urls
from sandbox.models import Delivery

pytestmark = pytest.mark.django_db


def booked(event_type: EventType, slot: int, name: str, email: str) -> Invitee:
    return services.invitee_book(
        event_type=event_type,
        start=services.open_slots(event_type)[slot],
        name=name,
        email=email,
        invitee_timezone="Europe/Paris",
        urls=Urls(site="https://slotpay.example"),
        answer="My secret plans",
    )


def test_an_erased_invitee_is_anonymised_everywhere(event_type: EventType, subscription) -> None:
    erased = booked(event_type, 0, "Clara Client", "clara@client.example")
    kept = booked(event_type, 1, "Otto Other", "otto@other.example")
    bodies = " ".join(Delivery.objects.values_list("body", flat=True))
    assert "clara@client.example" in bodies
    assert "Clara Client" in bodies

    count = services.invitees_erase(emails=["CLARA@client.example"])

    assert count == 1
    erased.refresh_from_db()
    assert erased.name == "Deleted invitee"
    assert erased.email.endswith("@deleted.calendly.com")
    assert (erased.first_name, erased.last_name, erased.questions_and_answers) == (None, None, [])
    bodies = " ".join(Delivery.objects.values_list("body", flat=True))
    assert "clara@client.example" not in bodies
    assert "Clara Client" not in bodies
    kept.refresh_from_db()
    assert (kept.name, kept.email) == ("Otto Other", "otto@other.example")
    assert "otto@other.example" in bodies
