"""The sandbox API answers with Calendly's shapes, statuses and errors."""

import pytest

from sandbox.calendly_sandbox import services

from .conftest import booked_invitee, reference

API = "/sandbox/calendly/api"


@pytest.fixture
def auth(settings):
    return {"HTTP_AUTHORIZATION": f"Bearer {settings.CALENDLY_API_TOKEN}"}


def test_a_scheduled_event_has_the_documented_keys(client, event_type, auth):
    invitee = booked_invitee(client, event_type)
    documented = reference("api.get-event.200.json")["resource"]

    response = client.get(f"{API}/scheduled_events/{invitee.scheduled_event.uuid}", **auth)

    resource = response.json()["resource"]
    assert response.status_code == 200
    assert set(resource) == set(documented)
    assert (
        resource["uri"] == f"http://testserver{API}/scheduled_events/{invitee.scheduled_event.uuid}"
    )
    assert resource["start_time"].endswith("Z")
    assert set(resource["invitees_counter"]) == set(documented["invitees_counter"])


@pytest.mark.parametrize("canceled", [False, True])
def test_an_invitee_has_the_documented_keys(client, event_type, auth, canceled):
    invitee = booked_invitee(client, event_type)
    if canceled:
        client.post(f"/sandbox/calendly/cancellations/{invitee.uuid}/", {"reason": "x"})
    name = "canceled" if canceled else "active"
    documented = reference(f"api.get-event-invitee.200.{name}.json")["resource"]

    response = client.get(
        f"{API}/scheduled_events/{invitee.scheduled_event.uuid}/invitees/{invitee.uuid}", **auth
    )

    resource = response.json()["resource"]
    assert response.status_code == 200
    assert set(resource) == set(documented)
    assert resource["canceled"] is canceled
    assert resource["questions_and_answers"][0]["answer"] == "Pricing,\nand the roadmap"


def test_a_missing_or_wrong_token_is_401(client, event_type):
    missing = client.get(f"{API}/users/me")
    wrong = client.get(f"{API}/users/me", HTTP_AUTHORIZATION="Bearer nope")

    assert missing.status_code == wrong.status_code == 401
    assert missing.json() == {"title": "Unauthenticated", "message": "The access token is invalid"}


def test_an_unknown_resource_is_404(client, event_type, auth):
    response = client.get(f"{API}/scheduled_events/NOPE", **auth)

    assert response.status_code == 404
    assert set(response.json()) == {"title", "message"}


def test_invalid_parameters_are_400_with_details(client, event_type, auth):
    response = client.get(f"{API}/event_types", {"user": "x", "count": "500"}, **auth)

    assert response.status_code == 400
    body = response.json()
    assert body["title"] == "Invalid Argument"
    assert body["details"][0]["parameter"] in {"user", "count"}


def test_collections_are_paginated_as_calendly_does(client, event_type, auth):
    for n in range(2):
        services.host_with_event_type_create(
            host_name="Ada Builder",
            host_email="ada@builder.example",
            host_slug="ada",
            host_timezone="Europe/Berlin",
            event_name=f"E{n}",
            event_slug=f"e{n}",
            duration=15,
        )
    user = f"http://testserver{API}/users/{event_type.host.uuid}"

    first = client.get(f"{API}/event_types", {"user": user, "count": 2}, **auth).json()
    second = client.get(first["pagination"]["next_page"], **auth).json()

    assert set(first["pagination"]) == {
        "count",
        "next_page",
        "previous_page",
        "next_page_token",
        "previous_page_token",
    }
    assert first["pagination"]["count"] == 2
    assert first["pagination"]["previous_page"] is None
    assert [e["slug"] for e in first["collection"] + second["collection"]] == ["30min", "e0", "e1"]
    assert second["pagination"]["next_page"] is None
    assert second["pagination"]["previous_page"] is not None


def test_the_api_needs_no_csrf_token(event_type, settings):
    from django.test import Client

    response = Client(enforce_csrf_checks=True).post(
        f"{API}/data_compliance/deletion/invitees",
        {"emails": ["a@example.com"]},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {settings.CALENDLY_API_TOKEN}",
    )

    assert response.status_code == 202


def test_a_past_or_canceled_event_cannot_be_canceled(client, event_type, auth):
    invitee = booked_invitee(client, event_type)
    url = f"{API}/scheduled_events/{invitee.scheduled_event.uuid}/cancellation"

    first = client.post(url, {"reason": "x"}, content_type="application/json", **auth)
    second = client.post(url, {"reason": "x"}, content_type="application/json", **auth)

    assert first.status_code == 201
    assert set(first.json()["resource"]) == {"canceled_by", "reason", "canceler_type", "created_at"}
    assert second.status_code == 403
