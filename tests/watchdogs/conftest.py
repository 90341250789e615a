"""The watchdogs' tests: the people on call."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail

ON_CALL = ["oncall@slotpay.example"]


@pytest.fixture(autouse=True)
def on_call(settings: Any) -> None:
    settings.ALERT_EMAILS = ON_CALL


def subjects() -> list[str]:
    return [message.subject for message in mail.outbox]
