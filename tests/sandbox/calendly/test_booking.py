"""Booking creates the event and the invitee, then redirects with Calendly's parameters."""

from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from sandbox.calendly_sandbox import services
from sandbox.calendly_sandbox.models import Invitee, ScheduledEvent

from .conftest import QUESTION, book

NEW_YORK = ZoneInfo("America/New_York")  # the invitee's zone: the times are given in it


def test_booking_creates_the_event_and_the_invitee(client, event_type):
    start = services.open_slots(event_type)[3]

    response = book(
        client, event_type, start=start, utm_content="intent-token", utm_source="slotpay"
    )

    assert response.status_code == 302
    event = ScheduledEvent.objects.get()
    invitee = Invitee.objects.get()
    assert (event.start_time, event.status, event.host) == (start, "active", event_type.host)
    assert (event.end_time - event.start_time).total_seconds() == 30 * 60
    assert invitee.scheduled_event == event
    assert (invitee.name, invitee.email, invitee.timezone) == (
        "Clara Client",
        "clara@client.example",
        "America/New_York",
    )
    assert invitee.questions_and_answers == [
        {"question": QUESTION, "answer": "Pricing,\nand the roadmap", "position": 0}
    ]
    assert invitee.tracking["utm_content"] == "intent-token"
    assert invitee.tracking["utm_source"] == "slotpay"


def test_the_redirect_carries_the_documented_parameters(client, event_type):
    response = book(
        client,
        event_type,
        utm_source="slotpay",
        utm_medium="web",
        utm_campaign="spring",
        utm_content="signed.intent-token",
        utm_term="builders",
    )

    target = urlsplit(response["Location"])
    params = {k: v[0] for k, v in parse_qs(target.query).items()}
    invitee = Invitee.objects.get()
    assert (target.scheme, target.netloc, target.path) == (
        "https",
        "slotpay.example",
        "/bookings/scheduled/",
    )
    assert params == {
        "from": "calendly",  # the redirect URL's own query is kept
        "assigned_to": "Ada Builder",
        "event_type_uuid": event_type.uuid,
        "event_type_name": "30 Minute Meeting",
        "event_start_time": invitee.scheduled_event.start_time.astimezone(NEW_YORK).isoformat(
            timespec="seconds"
        ),
        "event_end_time": invitee.scheduled_event.end_time.astimezone(NEW_YORK).isoformat(
            timespec="seconds"
        ),
        "invitee_uuid": invitee.uuid,
        "invitee_full_name": "Clara Client",
        "invitee_email": "clara@client.example",
        "answer_1": "Pricing,\nand the roadmap",
        "utm_source": "slotpay",
        "utm_medium": "web",
        "utm_campaign": "spring",
        "utm_content": "signed.intent-token",
        "utm_term": "builders",
    }


def test_without_a_redirect_url_a_confirmation_page_shows_the_parameters(client, event_type):
    event_type.redirect_url = ""
    event_type.save()

    response = book(client, event_type, utm_content="intent-token")
    page = client.get(response["Location"])

    assert response.status_code == 302
    assert response["Location"].startswith("/sandbox/calendly/booked/?")
    html = page.content.decode()
    assert page.status_code == 200
    assert "invitee_uuid" in html
    assert Invitee.objects.get().uuid in html
    assert "intent-token" in html


def test_an_invalid_form_books_nothing(client, event_type):
    response = book(client, event_type, email="not-an-email")

    assert response.status_code == 400
    assert not ScheduledEvent.objects.exists()
