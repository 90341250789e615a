"""An audit log with a year-old segment in each stream and a recent one after it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import time_machine

from audit import Category, record
from audit.checkpoints import checkpoints_write
from audit.models import AuditCheckpoint, AuditEntry
from audit.sequencer import integrate_pending

# The test's present; the clock stands still here while the test runs.
# In the past, with a year to spare: a purge never runs ahead of the database clock.
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=400)
RECENT = NOW - timedelta(days=10)


@dataclass(frozen=True)
class AgedLog:
    # Security positions 1-4 were sealed 400 days ago (three sign-ins and the record
    # of the transaction checkpoint); 5-8 ten days ago; 9 is the last record.
    old_security: AuditCheckpoint
    recent_security: AuditCheckpoint
    old_transaction: AuditCheckpoint

    @staticmethod
    def positions(stream: str) -> list[int]:
        """The stream's positions once what is queued is integrated (the test's
        transaction never commits: the sequencer's after-commit try never runs)."""
        integrate_pending(wait=True)
        return list(
            AuditEntry.objects.filter(stream=stream)
            .order_by("position")
            .values_list("position", flat=True)
        )


def _sign_ins(count: int, *, target: tuple[str, str] | None = None) -> None:
    for number in range(count):
        record(
            "accounts.user.login_succeeded",
            category=Category.SECURITY,
            actor=f"user-{number}",
            target=target,
        )


def _payments(count: int) -> None:
    for number in range(count):
        record(
            "payments.payment.paid",
            category=Category.TRANSACTION,
            actor="payments.checkout",
            target=("payments.payment", number),
            data={"amount": 8000},
            personal_data={"email": f"client{number}@example.org"},
        )


def build(*, held_target: tuple[str, str] | None = None) -> AgedLog:
    """The log, written with the clock moved back; ``held_target`` is named by one
    entry of the old security segment."""
    with time_machine.travel(OLD, tick=False):
        _sign_ins(2)
        _sign_ins(1, target=held_target)
        _payments(3)
        old_transaction, old_security = checkpoints_write(actor="tests")
    with time_machine.travel(RECENT, tick=False):
        _sign_ins(2)
        _payments(1)
        _, recent_security = checkpoints_write(actor="tests")
        integrate_pending(wait=True)
    return AgedLog(old_security, recent_security, old_transaction)
