"""Send again the after-commit tasks the outbox gave up on (MAX_ATTEMPTS failures).

Fix what made them fail first (the workers' log has each under outbox.given_up);
every task is idempotent, so one that did its work and failed afterwards does not
do it twice. A task may be stale by now (an email about a booking that changed since):
list them with --dry-run, and choose with --task or --id. The open
``outbox.given_up`` alert clears on the next watchdog pass once none is left.

    manage.py outbox_retry --dry-run
    manage.py outbox_retry --task core.tasks.send_mail
    manage.py outbox_retry --id 812 --id 815
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count

from core import outbox


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--task", help="only the rows of this task (its dotted name)")
        parser.add_argument(
            "--id", type=int, action="append", default=[], dest="ids", help="only this row"
        )
        parser.add_argument("--dry-run", action="store_true", help="list, change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        task, ids = options["task"], options["ids"]
        if options["dry_run"]:
            rows = outbox.given_up()
            if task:
                rows = rows.filter(task=task)
            if ids:
                rows = rows.filter(pk__in=ids)
            for row in rows.order_by("created_at", "pk").values(
                "pk", "task", "created_at", "last_error"
            ):
                self.stdout.write(
                    f"{row['pk']} {row['task']} made {row['created_at']:%Y-%m-%d %H:%M} UTC, "
                    f"last error {row['last_error'] or 'unknown'}"
                )
            counts: list[tuple[str, int]] = list(
                rows.values_list("task").annotate(n=Count("pk")).order_by("task")
            )
        else:
            counts = sorted(outbox.retry_given_up(task=task, ids=ids).items())
        if not counts:
            chosen = " chosen" if task or ids else ""
            raise CommandError(f"No{chosen} task is given up.")
        for name, count in counts:
            self.stdout.write(f"{name}: {count}")
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing sent.")
        else:
            self.stdout.write("Sent again: the relay publishes them within seconds.")
