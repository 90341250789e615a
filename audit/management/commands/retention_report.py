from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import purges

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def parse_moment(value: str) -> datetime:
    """An ISO 8601 date or time; one without a zone is UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--at takes an ISO 8601 date or time, not {value!r}.") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    # The longest period (7 years) is subtracted from it: the year 1 would overflow.
    if not EARLIEST <= moment <= LATEST:
        raise CommandError(
            f"--at must fall between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}, not {value!r}."
        )
    return moment


def describe_period(period: timedelta) -> str:
    if period.days and period.days % 365 == 0 and not period.seconds:
        years = period.days // 365
        return f"{years} year{'s' if years > 1 else ''}"
    if period.days > 1 and not period.seconds:
        return f"{period.days} days"
    return f"{int(period.total_seconds() // 3600)} hours"


def utc(moment: datetime | None) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else "-"


class Command(BaseCommand):
    help = (
        "Dry run of the retention purge: per rule, its period, what it is counted from, "
        "the rows due now, those a legal hold postpones (by hold) and when the next "
        "row becomes due (UTC)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--at",
            metavar="WHEN",
            help="forecast at this time instead of now (ISO 8601, e.g. 2027-12-01)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        now = parse_moment(options["at"]) if options["at"] else None
        for rule, forecast in purges.report(now):
            held = ", ".join(f"{name}: {rows}" for name, rows in sorted(forecast.held.items()))
            self.stdout.write(
                f"{rule.name}\n"
                f"  {rule.description}\n"
                f"  period: {describe_period(rule.period)} from {rule.counted_from}\n"
                f"  due now: {forecast.due}\n"
                f"  held: {held or 'none'}\n"
                f"  next due: {utc(forecast.next_due_at)}"
            )
