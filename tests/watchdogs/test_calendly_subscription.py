"""Calendly disables a subscription after failed deliveries: the watchdog finds it
through the API (the sandbox, over real HTTP), recreates it, audits it and alerts,
and the alert clears on the next pass. Events then reach us again."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.test import Client

from audit.models import AuditEntry
from bookings.calendly import CalendlyClient, WebhookSubscription
from core.alerts import open_alerts, run_watchdogs
from sandbox.calendly_sandbox import services
from sandbox.calendly_sandbox.models import EventType
from sandbox.calendly_sandbox.models import WebhookSubscription as SandboxSubscription
from tests.conftest import Site
from webhooks.models import WebhookEvent

from .conftest import subjects

pytestmark = pytest.mark.django_db(transaction=True)

WATCHDOG = ["bookings.calendly_subscription"]
EVENTS = ["invitee.created", "invitee.canceled"]


@pytest.fixture
def event_type(transactional_db: None) -> EventType:
    return services.host_with_event_type_create(
        host_name="Ada Builder",
        host_email="ada@builder.example",
        host_slug="ada",
        host_timezone="Europe/Berlin",
        event_name="30 Minute Meeting",
        event_slug="30min",
        duration=30,
    )


@pytest.fixture
def ours(site: Site, event_type: EventType) -> WebhookSubscription:
    """Our subscription, made through the API as an operator would."""
    with CalendlyClient() as calendly:
        me = calendly.current_user()
        return calendly.create_webhook_subscription(
            site.endpoint("calendly"),
            EVENTS,
            organization=me.current_organization,
            scope="organization",
        )


def _disable(subscription: WebhookSubscription) -> None:
    row = SandboxSubscription.objects.get(uuid=subscription.uuid)
    assert services.subscription_disable(subscription=row)


def test_a_healthy_subscription_raises_nothing(ours: WebhookSubscription) -> None:
    outcome = run_watchdogs(only=WATCHDOG)

    assert (outcome.raised, outcome.failed) == ([], [])
    assert SandboxSubscription.objects.get().uuid == ours.uuid


def test_a_disabled_subscription_is_recreated_audited_alerted_once_and_cleared(
    site: Site, ours: WebhookSubscription, settings: Any
) -> None:
    _disable(ours)

    first = run_watchdogs(only=WATCHDOG)

    [replacement] = SandboxSubscription.objects.all()
    assert replacement.uuid != ours.uuid
    assert replacement.state == SandboxSubscription.State.ACTIVE
    assert (replacement.callback_url, replacement.events) == (ours.callback_url, EVENTS)
    assert replacement.scope == "organization"
    assert replacement.signing_key == settings.CALENDLY_WEBHOOK_SIGNING_KEYS[0]
    [entry] = AuditEntry.objects.filter(action="bookings.calendly.subscription_recreated")
    assert entry.data["disabled"] == ours.uuid
    assert entry.data["created"] == replacement.uuid
    assert entry.target_id == replacement.uuid
    # The path token is a secret: neither the audit entry nor the email carries it.
    assert settings.CALENDLY_WEBHOOK_PATH_TOKEN not in str(entry.data)
    assert first.raised == ["bookings.calendly_subscription.disabled"]
    [alert] = mail.outbox
    assert settings.CALENDLY_WEBHOOK_PATH_TOKEN not in alert.body
    assert ours.uuid in alert.body
    assert "reconcile" in alert.body

    second, third = run_watchdogs(only=WATCHDOG), run_watchdogs(only=WATCHDOG)

    assert second.cleared == ["bookings.calendly_subscription.disabled"]
    assert (third.raised, third.cleared) == ([], [])
    assert [s.split("]")[0] for s in subjects()] == ["[Slotpay alert", "[Slotpay recovered"]
    assert open_alerts() == []

    # And bookings reach us again, signed with our key.
    client = Client()
    slot = services.open_slots(EventType.objects.get())[0]
    answer = client.post(
        "/sandbox/calendly/ada/30min/",
        {
            "start": slot.isoformat(),
            "name": "Clara Client",
            "email": "clara@client.example",
            "timezone": "Europe/Berlin",
        },
    )
    assert answer.status_code == 302
    site.deliver()
    assert WebhookEvent.objects.filter(provider="calendly", event_type="invitee.created").exists()


def test_no_subscription_to_our_endpoint_is_an_alert(site: Site, event_type: EventType) -> None:
    with CalendlyClient() as calendly:
        me = calendly.current_user()
        calendly.create_webhook_subscription(
            "https://elsewhere.example/hooks",
            EVENTS,
            organization=me.current_organization,
            scope="organization",
        )

    outcome = run_watchdogs(only=WATCHDOG)

    assert outcome.raised == ["bookings.calendly_subscription.missing"]


def test_calendly_unreachable_is_the_watchdogs_own_alert(
    site: Site, ours: WebhookSubscription, settings: Any
) -> None:
    settings.CALENDLY_API_BASE = "http://127.0.0.1:9/api"  # nothing listens there

    outcome = run_watchdogs(only=WATCHDOG)

    assert outcome.failed == WATCHDOG
    assert open_alerts() == ["watchdog.failed.bookings.calendly_subscription"]
