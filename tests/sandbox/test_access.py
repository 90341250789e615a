"""The sandbox's dashboards are for the operator; the pages providers show everyone are open."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from accounts.models import User
from sandbox.calendly_sandbox import services as calendly_sandbox
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

DASHBOARDS = [
    ("get", "/sandbox/"),
    ("get", "/sandbox/deliveries/"),
    ("get", "/sandbox/stripe/"),
    ("get", "/sandbox/calendly/"),
    ("post", "/sandbox/reset/"),
    ("post", "/sandbox/stripe/keys/"),
    ("post", "/sandbox/calendly/hosts/"),
    ("post", "/sandbox/calendly/subscriptions/"),
    ("post", "/sandbox/calendly/fault/"),
    ("post", "/sandbox/calendly/events/E1/cancel/"),
    ("post", "/sandbox/calendly/invitees/I1/no-show/"),
]


@pytest.fixture
def a_client() -> Client:
    browser = Client()
    browser.force_login(User.objects.create_user(email="c@client.example", password=PASSWORD))
    return browser


@pytest.mark.parametrize(("method", "url"), DASHBOARDS)
def test_anonymous_visitors_are_sent_to_sign_in(method, url):
    response = getattr(Client(), method)(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")


@pytest.mark.parametrize(("method", "url"), DASHBOARDS)
def test_clients_are_refused(a_client, method, url):
    assert getattr(a_client, method)(url).status_code == 403


@pytest.mark.parametrize(("method", "url"), DASHBOARDS)
def test_staff_of_a_back_office_group_are_refused(method, url):
    """An Auditor is staff, not the operator: no restricted keys, resets or lists."""
    auditor = User.objects.create_user(
        email="auditor@slotpay.example", password=PASSWORD, is_staff=True
    )
    auditor.groups.add(Group.objects.get(name="Auditor"))
    browser = Client()
    browser.force_login(auditor)

    assert getattr(browser, method)(url).status_code == 403


def test_the_pages_providers_show_everyone_stay_open():
    calendly_sandbox.host_with_event_type_create(
        host_name="Ada",
        host_email="ada@builder.example",
        host_slug="ada",
        host_timezone="Europe/Berlin",
        event_name="Review",
        event_slug="review",
        duration=30,
    )

    assert Client().get("/sandbox/calendly/ada/review/").status_code == 200
    assert Client().get("/sandbox/calendly/ada/").status_code == 200
