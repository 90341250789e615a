"""Each key's fingerprint, version, age and rotation due date; never the key.

One line per key of ``ROTATED_KEYS``: the fingerprint logs and audit entries use
(12 hex digits of its SHA-256), ``<NAME>_VERSION``, ``<NAME>_CREATED``, its age in days
and the date its ``KEY_ROTATION_DAYS`` rotation falls due, with the fingerprints of
older entries a list still accepts (a rotation in progress). ``--json`` prints the same
for monitoring. ``manage.py check --deploy`` turns the due dates into warnings and
errors (slotpay.W004, slotpay.E019).
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from config import keys

COLUMNS = ("key", "fingerprint", "version", "created", "age", "due", "state")


class Command(BaseCommand):
    help = __doc__
    # A status report for the operator mending the configuration: a failing check
    # (a malformed version, an overdue key) must not hide it.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="One JSON object per key.")

    def handle(self, *args: Any, **options: Any) -> None:
        today = timezone.now().date()
        rows = [_row(status, today) for status in keys.inventory()]
        if options["json"]:
            for row in rows:
                self.stdout.write(json.dumps(row, sort_keys=True))
            return
        self.stdout.write(
            f"Keys on {today.isoformat()} (UTC), rotated every {settings.KEY_ROTATION_DAYS} "
            f"days, warned {settings.KEY_ROTATION_WARNING_DAYS} days before:"
        )
        table = [COLUMNS, *[tuple(_shown(row[column]) for column in COLUMNS) for row in rows]]
        widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
        for line in table:
            self.stdout.write(
                "  ".join(
                    cell.ljust(width) for cell, width in zip(line, widths, strict=True)
                ).rstrip()
            )
        for row in rows:
            if row["older"]:
                self.stdout.write(
                    f"{row['key']}: older entries still accepted: {', '.join(row['older'])}"
                )


def _row(status: keys.KeyStatus, today: Any) -> dict[str, Any]:
    left = status.days_left(today)
    if status.fingerprint is None:
        state = "not set"
    elif left is None:
        state = f"no creation date (set {status.name}_CREATED)"
    elif left < 0:
        state = f"overdue by {keys.days(-left)}"
    elif left <= settings.KEY_ROTATION_WARNING_DAYS:
        state = f"due in {keys.days(left)}" if left else "due today"
    else:
        state = "ok"
    return {
        "key": status.name,
        "fingerprint": status.fingerprint,
        "version": status.version,
        "created": status.created.isoformat() if status.created else None,
        "age": status.age_days(today),
        "due": status.due.isoformat() if status.due else None,
        "state": state,
        "older": list(status.older),
    }


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value} d" if isinstance(value, int) else str(value)
