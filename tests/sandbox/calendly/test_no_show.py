"""The host marks a no-show: invitee_no_show.created, once."""

from .conftest import booked_invitee, delivered


def test_marking_a_no_show_sends_the_event_once(client, event_type, subscription, webhook_receiver):
    invitee = booked_invitee(client, event_type)
    dashboard = client.get("/sandbox/calendly/").content.decode()

    client.post(f"/sandbox/calendly/invitees/{invitee.uuid}/no-show/")
    client.post(f"/sandbox/calendly/invitees/{invitee.uuid}/no-show/")

    assert f"/sandbox/calendly/invitees/{invitee.uuid}/no-show/" in dashboard
    bodies = delivered(webhook_receiver)
    assert [b["event"] for b in bodies] == ["invitee.created", "invitee_no_show.created"]
    no_show = bodies[1]["payload"]["no_show"]
    invitee.refresh_from_db()
    assert no_show["uri"].endswith(f"/invitee_no_shows/{invitee.no_show_uuid}")
    assert no_show["created_at"].endswith("Z")
    assert bodies[1]["payload"]["status"] == "active"
