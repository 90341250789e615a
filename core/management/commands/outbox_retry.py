"""Send again the after-commit tasks the outbox gave up on (MAX_ATTEMPTS failures).

Fix what made them fail first (the workers' log has each under outbox.given_up);
every task is idempotent, so one that did its work and failed afterwards does not
do it twice. The open ``outbox.given_up`` alert clears on the next watchdog pass
once none is left.

    manage.py outbox_retry --dry-run
    manage.py outbox_retry --task core.tasks.send_mail
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
        parser.add_argument("--dry-run", action="store_true", help="list, change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        rows = outbox.given_up()
        task = options["task"]
        if task:
            rows = rows.filter(task=task)
        counts = list(rows.values_list("task").annotate(rows=Count("pk")).order_by("task"))
        if not counts:
            raise CommandError(f"No {task} task is given up." if task else "No task is given up.")
        for name, count in counts:
            self.stdout.write(f"{name}: {count}")
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing sent.")
            return
        released = outbox.retry_given_up(task=task)
        self.stdout.write(f"{released} sent again; the relay publishes them within seconds.")
