"""The beat task runs every app's watchdog: on a healthy system it raises nothing."""

from __future__ import annotations

import pytest
from django.core import mail

from bookings.calendly import CalendlyClient
from core import alerts
from core.tasks import run_watchdogs
from sandbox.calendly_sandbox import services
from tests.conftest import Site

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_task_runs_every_apps_watchdog_and_a_healthy_system_raises_nothing(
    site: Site,
) -> None:
    services.host_with_event_type_create(
        host_name="Ada Builder",
        host_email="ada@builder.example",
        host_slug="ada",
        host_timezone="Europe/Berlin",
        event_name="30 Minute Meeting",
        event_slug="30min",
        duration=30,
    )
    with CalendlyClient() as calendly:
        me = calendly.current_user()
        calendly.create_webhook_subscription(
            site.endpoint("calendly"),
            ["invitee.created", "invitee.canceled"],
            organization=me.current_organization,
            scope="organization",
        )

    assert run_watchdogs.apply().get(disable_sync_subtasks=False) == 0

    assert set(alerts.watchdogs()) == {
        "audit.chain",
        "bookings.calendly_subscription",
        "keys.rotation",
        "outbox.given_up",
        "payments.refunds_stuck",
        "webhooks.dead_letters",
        "webhooks.signature_failures",
    }
    assert alerts.open_alerts() == []
    assert mail.outbox == []
