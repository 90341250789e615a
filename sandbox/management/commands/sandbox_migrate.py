"""Migrate the sandbox's own database, when it has one (``make run`` on SQLite).

With PostgreSQL the sandbox shares the default database, which ``migrate`` has
migrated already: then there is nothing to do.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from sandbox import db


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args: Any, **options: Any) -> None:
        if db.ALIAS not in settings.DATABASES:
            self.stdout.write("The sandbox shares the default database: nothing to migrate.")
            return
        call_command(
            "migrate", database=db.ALIAS, interactive=False, verbosity=options["verbosity"]
        )
