"""The dashboard lists the sandbox's state and creates hosts and subscriptions."""

from sandbox.calendly_sandbox.models import EventType, Host, Organization, WebhookSubscription

from .conftest import booked_invitee


def test_the_sandbox_index_links_to_the_dashboard(client, db):
    assert b'href="/sandbox/calendly/"' in client.get("/sandbox/").content


def test_a_host_and_event_type_are_created_from_the_form(client, db):
    response = client.post(
        "/sandbox/calendly/hosts/",
        {
            "host_name": "Ada Builder",
            "host_email": "ada@builder.example",
            "host_slug": "ada",
            "host_timezone": "America/Chicago",
            "event_name": "Intro call",
            "event_slug": "intro",
            "duration": "45",
            "redirect_url": "https://slotpay.example/bookings/scheduled/",
            "question": "Anything else?",
        },
    )

    assert response.status_code == 302
    event_type = EventType.objects.select_related("host").get()
    assert (event_type.host.slug, event_type.host.timezone) == ("ada", "America/Chicago")
    assert (event_type.duration, event_type.question) == (45, "Anything else?")
    page = client.get("/sandbox/calendly/").content.decode()
    assert 'href="/sandbox/calendly/ada/intro/"' in page
    assert client.get("/sandbox/calendly/ada/intro/").status_code == 200


def test_reserved_slugs_and_bad_zones_are_refused(client, db):
    response = client.post(
        "/sandbox/calendly/hosts/",
        {
            "host_name": "X",
            "host_email": "x@example.com",
            "host_slug": "api",
            "host_timezone": "Mars/Olympus",
            "event_name": "E",
            "event_slug": "e",
            "duration": "30",
        },
    )

    assert response.status_code == 400
    assert not Host.objects.exists()


def test_the_dashboard_lists_bookings_with_their_actions(client, event_type):
    invitee = booked_invitee(client, event_type)

    page = client.get("/sandbox/calendly/").content.decode()

    assert "Clara Client" in page
    assert f"/sandbox/calendly/cancellations/{invitee.uuid}/" in page
    assert f"/sandbox/calendly/reschedulings/{invitee.uuid}/" in page
    assert "Mark no-show" in page


def test_a_subscription_is_created_from_the_dashboard(client, event_type, settings):
    client.post(
        "/sandbox/calendly/subscriptions/",
        {"callback_url": "http://127.0.0.1:8000/webhooks/calendly/", "events": ["invitee.created"]},
    )

    subscription = WebhookSubscription.objects.get()
    assert subscription.scope == "organization"
    assert subscription.signing_key == settings.CALENDLY_WEBHOOK_SIGNING_KEYS[0]
    assert (
        "http://127.0.0.1:8000/webhooks/calendly/"
        in client.get("/sandbox/calendly/").content.decode()
    )


def test_reset_empties_the_calendly_sandbox(client, event_type):
    booked_invitee(client, event_type)

    client.post("/sandbox/reset/")

    assert not Organization.objects.exists()
    assert not EventType.objects.exists()
