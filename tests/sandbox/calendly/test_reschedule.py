"""Rescheduling: invitee.canceled (rescheduled, new_invitee) then invitee.created (old_invitee)."""

from urllib.parse import parse_qs, urlsplit

from sandbox.calendly_sandbox import services
from sandbox.calendly_sandbox.models import Invitee, ScheduledEvent

from .conftest import booked_invitee, delivered


def test_rescheduling_links_the_old_and_new_invitees(
    client, event_type, subscription, webhook_receiver
):
    old = booked_invitee(client, event_type, utm_content="intent-token")
    old_start = old.scheduled_event.start_time
    new_start = services.open_slots(event_type)[5]

    page = client.get(f"/sandbox/calendly/reschedulings/{old.uuid}/")
    response = client.post(
        f"/sandbox/calendly/reschedulings/{old.uuid}/",
        {"start": new_start.isoformat(), "reason": "Clash"},
    )

    assert page.status_code == 200
    assert response.status_code == 302
    new = Invitee.objects.exclude(pk=old.pk).get()
    old.refresh_from_db()
    assert (old.status, old.rescheduled, old.new_invitee) == ("canceled", True, new)
    assert new.old_invitee == old
    assert new.scheduled_event.start_time == new_start
    assert new.utm_content == "intent-token"  # the booking keeps its tracking
    assert old.scheduled_event.status == ScheduledEvent.Status.CANCELED
    assert old_start in services.open_slots(event_type)
    params = parse_qs(urlsplit(response["Location"]).query)
    assert params["invitee_uuid"] == [new.uuid]

    bodies = delivered(webhook_receiver)
    assert [b["event"] for b in bodies] == [
        "invitee.created",
        "invitee.canceled",
        "invitee.created",
    ]
    first, canceled, created = (b["payload"] for b in bodies)
    assert canceled["uri"] == first["uri"]
    assert canceled["rescheduled"] is True
    assert canceled["new_invitee"] == created["uri"]
    assert canceled["cancellation"]["reason"] == "Clash"
    assert created["old_invitee"] == canceled["uri"]
    assert created["rescheduled"] is False
    assert created["new_invitee"] is None
    assert created["scheduled_event"]["uri"] != canceled["scheduled_event"]["uri"]
    assert created["tracking"]["utm_content"] == "intent-token"


def test_a_canceled_booking_cannot_be_rescheduled(client, event_type, subscription):
    old = booked_invitee(client, event_type)
    client.post(f"/sandbox/calendly/cancellations/{old.uuid}/", {"reason": "x"})

    response = client.post(
        f"/sandbox/calendly/reschedulings/{old.uuid}/",
        {"start": services.open_slots(event_type)[3].isoformat()},
    )

    assert response.status_code == 200
    assert Invitee.objects.count() == 1
