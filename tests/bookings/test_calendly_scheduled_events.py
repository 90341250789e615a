"""get_scheduled_event(), get_invitee() and cancel_event() against the sandbox."""

from datetime import timedelta

import pytest

from bookings.calendly import Forbidden
from sandbox import delivery
from sandbox.calendly_sandbox.models import ScheduledEvent, WebhookSubscription

from .helpers import INVITEE_EMAIL, book

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_scheduled_event_is_read_by_uuid_or_by_any_uri(calendly, event_type, live_server):
    invitee = book(live_server, event_type)
    row = invitee.scheduled_event

    by_uuid = calendly.get_scheduled_event(row.uuid)
    elsewhere = f"https://api.calendly.com/api/v2/scheduled_events/{row.uuid}"
    by_uri = calendly.get_scheduled_event(elsewhere)

    assert by_uuid == by_uri
    assert by_uuid.uuid == row.uuid
    assert by_uuid.status == "active"
    assert by_uuid.start_time == row.start_time
    assert by_uuid.end_time - by_uuid.start_time == timedelta(minutes=30)
    assert by_uuid.start_time.utcoffset() == timedelta(0)
    assert by_uuid.event_type_uri.endswith(f"/event_types/{event_type.uuid}")
    assert by_uuid.cancellation is None


def test_an_invitee_is_read_with_tracking_and_answers(calendly, event_type, live_server):
    invitee = book(live_server, event_type)

    got = calendly.get_invitee(invitee.scheduled_event.uuid, invitee.uuid)

    assert got.uuid == invitee.uuid
    assert got.event_uuid == invitee.scheduled_event.uuid
    assert got.email == INVITEE_EMAIL
    assert got.name == "Clara Client"
    assert got.status == "active"
    assert got.timezone == "America/New_York"
    assert got.tracking.utm_content == "intent-token-123"
    assert got.tracking.utm_source == "slotpay"
    assert got.tracking.utm_medium is None
    assert [(qa.question, qa.answer) for qa in got.questions_and_answers] == [
        ("What should we discuss?", "Pricing")
    ]
    assert got.cancel_url.endswith(f"/sandbox/calendly/cancellations/{invitee.uuid}/")
    assert got.reschedule_url.endswith(f"/sandbox/calendly/reschedulings/{invitee.uuid}/")
    assert (got.rescheduled, got.old_invitee, got.new_invitee, got.no_show) == (
        False,
        None,
        None,
        None,
    )


def test_an_invitee_is_found_by_its_uris(calendly, event_type, live_server):
    invitee = book(live_server, event_type)
    event_uri = f"https://calendly.com/scheduled_events/{invitee.scheduled_event.uuid}"
    invitee_uri = f"{event_uri}/invitees/{invitee.uuid}"

    assert calendly.get_invitee(event_uri, invitee_uri).uuid == invitee.uuid


def test_canceling_an_event_frees_the_slot_and_tells_subscribers(
    calendly, event_type, live_server, webhook_receiver
):
    WebhookSubscription.objects.create(
        callback_url=webhook_receiver.url,
        events=["invitee.canceled"],
        scope="organization",
        organization=event_type.host.organization,
        signing_key="k",
    )
    invitee = book(live_server, event_type)

    cancellation = calendly.cancel_event(invitee.scheduled_event.uuid, "Payment expired")

    assert cancellation.canceler_type == "host"
    assert cancellation.reason == "Payment expired"
    assert cancellation.canceled_by == "Ada Builder"
    event = calendly.get_scheduled_event(invitee.scheduled_event.uuid)
    assert event.status == "canceled"
    assert event.cancellation.reason == "Payment expired"
    assert calendly.get_invitee(event.uuid, invitee.uuid).status == "canceled"
    assert not ScheduledEvent.objects.filter(status="active").exists()
    assert delivery.deliver_due() == 1


def test_canceling_twice_is_refused(calendly, event_type, live_server):
    invitee = book(live_server, event_type)
    calendly.cancel_event(invitee.scheduled_event.uuid, "once")

    with pytest.raises(Forbidden) as caught:
        calendly.cancel_event(invitee.scheduled_event.uuid, "twice")

    assert caught.value.status == 403
    assert caught.value.title == "Permission Denied"


def test_a_redirect_s_invitee_is_found_by_email_and_start(calendly, event_type, live_server):
    invitee = book(live_server, event_type)
    other = book(live_server, event_type, slot=1)
    start = invitee.scheduled_event.start_time

    found = calendly.find_invitee(invitee.uuid, email=INVITEE_EMAIL, start_time=start)

    assert found is not None
    assert found.uuid == invitee.uuid
    assert found.tracking.utm_content == "intent-token-123"
    # Another invitee's id, another email, another time: not found.
    assert calendly.find_invitee(other.uuid, email=INVITEE_EMAIL, start_time=start) is None
    assert calendly.find_invitee(invitee.uuid, email="x@example.org", start_time=start) is None
    later = start + timedelta(minutes=5)
    assert calendly.find_invitee(invitee.uuid, email=INVITEE_EMAIL, start_time=later) is None
