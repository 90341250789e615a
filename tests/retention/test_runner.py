"""The runner: batches, resuming, the report agreeing with the purge, failures."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from audit import purges
from audit.models import AuditEntry
from core.models import Alert
from payments.models import Payment
from tests.retention.conftest import START
from tests.retention.helpers import purge, purged_entries, rule
from webhooks.models import WebhookEvent
from webhooks.retention import DedupKeys

pytestmark = pytest.mark.django_db


def _dedup_keys(count: int, *, age: timedelta = timedelta(days=8)) -> None:
    WebhookEvent.objects.bulk_create(
        WebhookEvent(
            provider="calendly",
            event_id=f"evt_{number}",
            event_type="invitee.created",
            status=WebhookEvent.Status.PROCESSED,
            received_at=START - age,
            next_attempt_at=START - age,
            processed_at=START - age,
        )
        for number in range(count)
    )


class KilledMidBatch(DedupKeys):
    """The real rule, whose process dies after the batch's DELETE, before the commit."""

    def purge_rows(self, rows: Any, now: datetime) -> int:
        super().purge_rows(rows, now)
        raise SystemExit("killed")


class Broken(purges.RetentionRule):
    name = "webhooks.dedup_keys"
    description = "fails"
    period = timedelta(days=1)
    counted_from = "never"

    def forecast(self, now: datetime) -> purges.Forecast:
        return purges.Forecast(due=0)

    def purge_batch(self, now: datetime, limit: int) -> int:
        raise RuntimeError("column invitee_email of clara@client.example")


def test_a_purge_stopped_after_one_batch_resumes_and_finishes(clock, monkeypatch) -> None:
    _dedup_keys(5)
    real = rule("webhooks.dedup_keys")
    assert real.purge_batch(START, 2) == 2  # one batch, then the process stops
    assert WebhookEvent.objects.count() == 3

    # Killed inside the next batch: its transaction rolls back, nothing half-done.
    monkeypatch.setitem(purges._rules, real.name, KilledMidBatch())
    with pytest.raises(SystemExit):
        purges.run(rules=[real.name], batch_size=2)
    assert WebhookEvent.objects.count() == 3
    monkeypatch.setitem(purges._rules, real.name, real)

    assert real.forecast(START).due == 3
    assert purges.run(rules=[real.name], batch_size=2) == {real.name: 3}
    assert not WebhookEvent.objects.exists()
    assert real.forecast(START).due == 0
    assert [entry.data["rows"] for entry in purged_entries(real.name)] == [3]


def test_the_report_is_what_the_purge_then_does(world, clock, staff) -> None:
    year, seven = timedelta(days=365), timedelta(days=7 * 365)
    for number in range(3):
        world.booking(ended=START - year - timedelta(days=number))
    booking = world.booking(ended=START - seven - timedelta(days=3))
    world.payment(booking, created=START - seven - timedelta(days=5))
    held = world.booking(ended=START - seven - timedelta(days=3))
    world.payment(held, created=START - seven - timedelta(days=5), status=Payment.Status.DISPUTED)
    world.booking(ended=START - timedelta(days=2))
    _dedup_keys(4)

    before = {each.name: forecast for each, forecast in purges.report()}
    assert before["bookings.personal_data"].due == 4
    assert before["bookings.personal_data"].held == {"open dispute": 1}
    assert before["payments.records"].due == 1
    assert before["bookings.records"].due == 1
    assert before["webhooks.dedup_keys"].due == 4

    assert purges.run(batch_size=2) == {name: forecast.due for name, forecast in before.items()}
    after = {each.name: forecast for each, forecast in purges.report()}
    assert {name: forecast.due for name, forecast in after.items()} == dict.fromkeys(after, 0)
    assert after["bookings.records"].held == {"open dispute": 1}


def test_a_failing_rule_is_logged_audited_alerted_and_stops_no_other(
    world, clock, caplog, monkeypatch
) -> None:
    world.booking(ended=START - timedelta(days=400))
    real = rule("webhooks.dedup_keys")
    monkeypatch.setitem(purges._rules, real.name, Broken())
    failed: list[str] = []
    with caplog.at_level(logging.ERROR, logger="audit.purges"):
        done = purges.run(failed=failed)
    assert done["bookings.personal_data"] == 1
    assert done["webhooks.dedup_keys"] == 0
    assert failed == ["webhooks.dedup_keys"]
    [logged] = [record for record in caplog.records if record.msg == "retention.rule.failed"]
    assert (logged.rule, logged.error) == ("webhooks.dedup_keys", "RuntimeError")
    assert "clara" not in caplog.text
    entry = AuditEntry.objects.get(action="retention.failed")
    assert entry.data == {"rule": "webhooks.dedup_keys", "rows": 0, "error": "RuntimeError"}
    alert = Alert.objects.get(key="retention.failed.webhooks.dedup_keys")
    assert alert.cleared_at is None

    purges.run(failed=failed)  # still failing: the same incident, not a new alert
    assert Alert.objects.filter(key=alert.key).count() == 1

    monkeypatch.setitem(purges._rules, real.name, real)
    purges.run()
    alert.refresh_from_db()
    assert alert.cleared_at is not None


def test_retention_report_lists_each_rule_and_forecasts_another_day(world, clock) -> None:
    booking = world.booking(ended=START - timedelta(days=10))
    out = StringIO()
    call_command("retention_report", stdout=out)
    report = out.getvalue()
    for each in purges.rules():
        assert f"{each.name}\n  {each.description}\n" in report
    assert (
        "bookings.personal_data\n"
        "  Invitee name, email and answers of a booking, anonymised (set to NULL).\n"
        "  period: 1 year from the appointment's end\n"
        "  due now: 0\n"
        "  held: none\n"
        f"  next due: {(booking.end_at + timedelta(days=365)).isoformat()}"
    ) in report
    assert "period: 7 years from the payment's creation" in report
    assert "period: 24 hours from the event's processing" in report

    out = StringIO()
    call_command("retention_report", "--at", "2027-12-01", stdout=out)
    assert "bookings.personal_data\n" in out.getvalue()
    assert "  due now: 1\n  held: none\n  next due: -" in out.getvalue()
    with pytest.raises(CommandError, match="ISO 8601"):
        call_command("retention_report", "--at", "next year")
    with pytest.raises(CommandError, match="must fall between"):  # 7 years back overflows
        call_command("retention_report", "--at", "0001-01-01")


def test_retention_purge_prints_rows_per_rule_and_refuses_unknown_ones(
    world, clock, monkeypatch
) -> None:
    world.booking(ended=START - timedelta(days=400))
    out = StringIO()
    call_command("retention_purge", "--rule", "bookings.personal_data", stdout=out)
    assert out.getvalue() == "bookings.personal_data: 1 rows\n"
    with pytest.raises(CommandError, match="unknown retention rules: nope"):
        call_command("retention_purge", "--rule", "nope")

    monkeypatch.setitem(purges._rules, "webhooks.dedup_keys", Broken())
    out = StringIO()
    with pytest.raises(CommandError, match=r"failed: webhooks\.dedup_keys"):
        call_command("retention_purge", stdout=out)
    assert "webhooks.dedup_keys: 0 rows (failed)\n" in out.getvalue()


def test_purge_batch_is_one_transaction_of_at_most_limit_rows(clock) -> None:
    _dedup_keys(5)
    assert [rule("webhooks.dedup_keys").purge_batch(START, 2) for _ in range(4)] == [2, 2, 1, 0]
    assert purge("webhooks.dedup_keys") == 0


def test_the_beat_task_runs_every_rule(world, clock) -> None:
    world.booking(ended=START - timedelta(days=400))
    _dedup_keys(2)
    done = purges.purge.apply().get(disable_sync_subtasks=False)
    assert purges.purge.name == "audit.purges.purge"
    assert done["bookings.personal_data"] == 1
    assert done["webhooks.dedup_keys"] == 2
    assert set(done) == {each.name for each in purges.rules()}
