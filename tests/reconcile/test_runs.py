"""How a run is started and what it leaves: the command's window and output, the
daily task, and the alert a failing run raises and the next good run clears."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import AuditEntry
from bookings import tasks
from bookings.management.commands.reconcile import parse_since
from core.models import Alert
from sandbox.calendly_sandbox import services as calendly_sandbox
from tests.bookings.world import World

pytestmark = pytest.mark.django_db(transaction=True)


def test_since_takes_an_iso_date_or_date_and_time() -> None:
    assert parse_since("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_since("2026-11-01T08:30") == datetime(2026, 11, 1, 8, 30, tzinfo=UTC)
    assert parse_since("2026-11-01T08:30+01:00") == datetime(2026, 11, 1, 7, 30, tzinfo=UTC)
    with pytest.raises(CommandError, match="ISO date"):
        parse_since("last tuesday")
    with pytest.raises(CommandError, match="must be after"):  # Stripe refuses before 1970
        parse_since("0001-01-01")


def test_the_command_prints_what_it_listed_and_fed(world: World) -> None:
    slot = world.book()
    world.pay(slot)  # the client closes the tab; nothing is delivered yet
    out = StringIO()

    call_command("reconcile", "--since", "2026-11-01", stdout=out)
    again = StringIO()
    call_command("reconcile", "--since", "2026-11-01", stdout=again)

    printed = out.getvalue()
    assert "Reconciled since 2026-11-01T00:00:00+00:00." in printed
    assert "Listed 1 checkout sessions." in printed
    assert "Fed stripe checkout.session.completed evt_" in printed
    assert ": processed." in printed
    assert "Drift: 0 found, 0 new, 0 resolved, 0 open." in printed
    assert "Fed nothing through the inbox" in again.getvalue()
    assert slot.booking.status == "confirmed"
    runs = AuditEntry.objects.filter(action="bookings.reconcile.ran").order_by("pk")
    assert [run.data["fed"] for run in runs] == [1, 0]


def test_a_future_since_is_refused(world: World) -> None:
    with pytest.raises(CommandError, match="future"):
        call_command("reconcile", "--since", "2999-01-01")


def test_a_failing_run_raises_the_alert_and_a_good_run_clears_it(world: World) -> None:
    calendly_sandbox.fault_arm(status=500, count=50, retry_after=0)

    with pytest.raises(CommandError, match=r"reconcile\.failed"):
        call_command("reconcile", stdout=StringIO())
    with pytest.raises(Exception, match="calendly"):
        tasks.reconcile.apply()  # the daily task: the same run, and the same alert

    alert = Alert.objects.get(key="reconcile.failed")
    assert (alert.cleared_at, alert.times_seen) == (None, 2)
    assert "Reconciliation failed (Unavailable)" in alert.summary
    failed = AuditEntry.objects.filter(action="bookings.reconcile.failed")
    assert failed.count() == 2
    assert failed.first().data["error"] == "Unavailable"

    calendly_sandbox.fault_arm(status=500, count=0)
    assert tasks.reconcile.apply().get(disable_sync_subtasks=False)["fed"] == 0

    alert.refresh_from_db()
    assert alert.cleared_at is not None
