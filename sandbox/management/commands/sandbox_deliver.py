from typing import Any

from django.core.management.base import BaseCommand

from sandbox.delivery import deliver_due


class Command(BaseCommand):
    help = "Attempt every sandbox webhook delivery that is due, once, and exit."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"Attempted {deliver_due()} deliveries.")
