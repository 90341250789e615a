"""``manage.py reconcile [--since 2026-11-01]``: one reconciliation run, now.

What the daily task does (``bookings.reconcile``), over the window asked for: Stripe's
events, Checkout Sessions and refunds created since then and Calendly's appointments
starting since then. Prints what it listed, what it fed through the webhook inbox, and
the drift left for a person (the admin's "Reconciliation drift" page lists it).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from bookings import reconcile

# Stripe's account history starts long after this; Calendly's too.
EARLIEST = datetime(2010, 1, 1, tzinfo=UTC)


def parse_since(value: str) -> datetime:
    """An ISO date (midnight UTC) or date and time (UTC when it names no zone)."""
    try:
        if len(value) == 10:
            parsed = datetime.combine(date.fromisoformat(value), time.min, tzinfo=UTC)
        else:
            parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"--since takes an ISO date or date and time (2026-11-01, 2026-11-01T08:00Z), "
            f"not {value!r}"
        ) from None
    since = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    if since < EARLIEST:
        # Stripe counts time from 1970 and refuses a negative created[gte]: a typo
        # must not raise a real "reconciliation failed" incident.
        raise CommandError(f"--since must be after {EARLIEST:%Y-%m-%d}, not {value!r}")
    return since


class Command(BaseCommand):
    help = "Compare Stripe and Calendly with our records; feed missed events; list drift."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since",
            help="ISO date or datetime (UTC unless it says otherwise); "
            "default: RECONCILE_LOOKBACK_HOURS ago.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        since = parse_since(options["since"]) if options["since"] else None
        if since is not None and since > timezone.now():
            raise CommandError("--since is in the future: there is nothing to compare yet")
        try:
            report = reconcile.reconcile(since=since)
        except Exception as exc:
            raise CommandError(
                f"reconciliation failed ({type(exc).__name__}); the reconcile.failed alert "
                "is raised and the log has the details"
            ) from exc
        for line in report.lines():
            self.stdout.write(line)
