"""The consent step: explicit, versioned, and every refusal says why."""

import pytest
from django.test import Client

from bookings.models import PolicyConsent
from tests.bookings.factories import make_event_type

pytestmark = pytest.mark.django_db


@pytest.fixture
def event_type(owner):
    return make_event_type(owner.builders.get())


def test_the_page_shows_price_and_policy_with_an_unticked_box(client, event_type) -> None:
    page = client.get(f"/sessions/{event_type.pk}/").content.decode()
    assert "€80.00" in page
    assert "48 hours or more before the start: 100% refunded" in page
    assert "Sign in to book" in page
    assert "checked" not in page


def test_no_tick_no_booking(stranger, event_type) -> None:
    browser = Client()
    browser.force_login(stranger)
    refused = browser.post(f"/sessions/{event_type.pk}/", {"policy_version": "1"})
    assert refused.status_code == 400
    assert "Please tick the box" in refused.content.decode()
    assert not PolicyConsent.objects.exists()


def test_a_policy_changed_while_reading_must_be_read_again(stranger, event_type, staff) -> None:
    browser = Client()
    browser.force_login(stranger)
    event_type.set_refund_policy([{"min_notice_hours": 0, "percent": 0}], actor=staff)
    refused = browser.post(f"/sessions/{event_type.pk}/", {"consent": "yes", "policy_version": "1"})
    assert refused.status_code == 409
    assert "policy changed" in refused.content.decode()
    assert not PolicyConsent.objects.exists()


def test_consent_is_recorded_with_version_and_network_then_calendly(stranger, event_type):
    browser = Client()
    browser.force_login(stranger)
    sent = browser.post(
        f"/sessions/{event_type.pk}/",
        {"consent": "yes", "policy_version": "1"},
        REMOTE_ADDR="203.0.113.77",
    )
    assert sent.status_code == 302
    assert sent["Location"].startswith(event_type.scheduling_url + "?")
    assert "utm_content=" in sent["Location"]
    assert "stranger%40example.net" in sent["Location"]
    consent = PolicyConsent.objects.get()
    assert (consent.user, consent.policy_version, consent.ip) == (stranger, 1, "203.0.113.0")
    assert consent.policy == event_type.refund_policy


def test_an_inactive_account_cannot_book(stranger, event_type) -> None:
    browser = Client()
    browser.force_login(stranger)
    stranger.is_active = False
    stranger.save()
    page = browser.post(f"/sessions/{event_type.pk}/", {"consent": "yes", "policy_version": "1"})
    assert page.status_code in (302, 403)
    assert not PolicyConsent.objects.exists()
