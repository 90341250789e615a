"""An alert reaches Sentry once, as a fatal message naming the incident, when Sentry
is configured; the CRITICAL log record does not make a second event."""

from __future__ import annotations

from typing import Any

import pytest

from core.alerts import clear_alert, raise_alert
from tests.config.test_sentry import _events, ingest, sentry

__all__ = ["ingest", "sentry"]

pytestmark = pytest.mark.django_db(transaction=True)


def test_one_incident_is_one_fatal_sentry_event(
    sentry: list[tuple[str, str]], settings: Any
) -> None:
    settings.SENTRY_DSN = "configured"  # read by raise_alert; the SDK is set up already

    raise_alert("webhooks.dead_letters", summary="2 webhook events dead-lettered.")
    raise_alert("webhooks.dead_letters", summary="2 webhook events dead-lettered.")
    clear_alert("webhooks.dead_letters")

    [event] = _events(sentry)
    assert event["level"] == "fatal"
    assert event["message"] == "webhooks.dead_letters: 2 webhook events dead-lettered."
