"""Cancelling from the invitee's cancel link sends invitee.canceled and frees the slot."""

from sandbox.calendly_sandbox import services
from sandbox.calendly_sandbox.models import ScheduledEvent

from .conftest import booked_invitee, delivered


def test_the_cancel_link_cancels_and_tells_subscribers(
    client, event_type, subscription, webhook_receiver
):
    invitee = booked_invitee(client, event_type)
    start = invitee.scheduled_event.start_time
    page = client.get(f"/sandbox/calendly/cancellations/{invitee.uuid}/")

    response = client.post(
        f"/sandbox/calendly/cancellations/{invitee.uuid}/", {"reason": "Meeting Conflict"}
    )

    assert page.status_code == 200
    assert response.status_code == 302
    invitee.refresh_from_db()
    assert invitee.status == "canceled"
    assert invitee.scheduled_event.status == ScheduledEvent.Status.CANCELED
    assert start in services.open_slots(event_type)  # free again
    created, canceled = delivered(webhook_receiver)
    assert (created["event"], canceled["event"]) == ("invitee.created", "invitee.canceled")
    payload = canceled["payload"]
    assert payload["status"] == "canceled"
    assert payload["rescheduled"] is False
    assert payload["cancellation"] == {
        "canceled_by": "Clara Client",
        "reason": "Meeting Conflict",
        "canceler_type": "invitee",
        "created_at": payload["cancellation"]["created_at"],
    }
    assert payload["scheduled_event"]["status"] == "canceled"
    assert payload["uri"] == created["payload"]["uri"]


def test_cancelling_twice_sends_one_event(client, event_type, subscription, webhook_receiver):
    invitee = booked_invitee(client, event_type)
    url = f"/sandbox/calendly/cancellations/{invitee.uuid}/"

    client.post(url, {"reason": "once"})
    client.post(url, {"reason": "twice"})

    events = [body["event"] for body in delivered(webhook_receiver)]
    assert events == ["invitee.created", "invitee.canceled"]
    invitee.refresh_from_db()
    assert invitee.cancel_reason == "once"


def test_the_host_cancels_from_the_dashboard(client, event_type, subscription, webhook_receiver):
    invitee = booked_invitee(client, event_type)

    client.post(f"/sandbox/calendly/events/{invitee.scheduled_event.uuid}/cancel/")

    canceled = delivered(webhook_receiver)[-1]
    assert canceled["event"] == "invitee.canceled"
    assert canceled["payload"]["cancellation"]["canceler_type"] == "host"
    assert canceled["payload"]["cancellation"]["canceled_by"] == "Ada Builder"
