from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import purges


class Command(BaseCommand):
    help = (
        "Purge what the retention rules have due now, in batches (each its own short "
        "transaction; a run that is stopped resumes on the next), and print the rows "
        "purged per rule. Each purge is audited."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--rule",
            action="append",
            dest="rules",
            metavar="NAME",
            help="run only this rule (repeatable); retention_report lists them",
        )
        parser.add_argument(
            "--batch-size", type=int, help="rows per transaction (RETENTION_BATCH_SIZE)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] is not None and options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        failed: list[str] = []
        try:
            done = purges.run(
                batch_size=options["batch_size"], rules=options["rules"], failed=failed
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        for name, rows in done.items():
            self.stdout.write(f"{name}: {rows} rows{' (failed)' if name in failed else ''}")
        if failed:
            raise CommandError(f"Retention rules failed: {', '.join(failed)} (see the log).")
