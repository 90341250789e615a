"""The audit chain's watchdog: a chain that stops verifying is one alert until a pass
verifies it again (incremental: each pass reads only what was written since)."""

from __future__ import annotations

import json

import pytest
from django.core import mail

from audit import Category, record
from core.alerts import open_alerts, run_watchdogs
from tests.audit.tamper import execute, trigger_disabled

from .conftest import subjects

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

CHAIN = ["audit.chain"]


def _entry(number: int) -> int:
    entry = record(
        f"payments.payment.step_{number}",
        category=Category.TRANSACTION,
        actor="webhooks.stripe",
        data={"amount": number * 100},
    )
    return entry.pk


def test_an_altered_entry_is_one_alert_until_the_chain_verifies_again() -> None:
    for number in range(3):
        _entry(number)
    assert run_watchdogs(only=CHAIN).raised == []  # verified up to here

    altered = _entry(3)
    _entry(4)
    with trigger_disabled():
        execute("UPDATE audit_auditentry SET data = %s WHERE id = %s", [json.dumps({}), altered])
    run_watchdogs(only=CHAIN)
    run_watchdogs(only=CHAIN)

    assert open_alerts() == ["audit.chain"]
    [alert] = mail.outbox
    assert alert.subject.startswith("[Slotpay alert] The audit chain does not verify at entry #")
    assert "entry_hash does not match" in alert.body

    with trigger_disabled():
        execute(
            "UPDATE audit_auditentry SET data = %s WHERE id = %s",
            [json.dumps({"amount": 300}), altered],
        )
    run_watchdogs(only=CHAIN)

    assert open_alerts() == []
    assert [s.split(" The")[0] for s in subjects()] == [
        "[Slotpay alert]",
        "[Slotpay recovered]",
    ]
