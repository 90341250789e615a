"""Production names who hears of an alert: ALERT_EMAILS is required there (E015)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import run_checks

from config.checks import check_alert_recipients


def _ids() -> list[str]:
    return [m.id for m in run_checks() if m.id and m.id.startswith("slotpay.E015")]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("environment", "alert_emails", "expected"),
    [
        ("production", [], ["slotpay.E015"]),
        ("production", ["oncall@slotpay.example"], []),
        ("staging", [], []),
        ("development", [], []),
    ],
)
def test_alert_emails_are_required_in_production(
    settings: Any, environment: str, alert_emails: list[str], expected: list[str]
) -> None:
    settings.ENVIRONMENT = environment
    settings.ALERT_EMAILS = alert_emails
    settings.ADMINS = [("Admins", "admins@slotpay.example")]  # not enough in production

    assert _ids() == expected


def test_the_error_names_the_variable(settings: Any) -> None:

    settings.ENVIRONMENT = "production"
    settings.ALERT_EMAILS = []

    [error] = check_alert_recipients()

    assert "ALERT_EMAILS" in error.msg
    assert "ALERT_EMAILS" in (error.hint or "")
