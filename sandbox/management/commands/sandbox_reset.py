from typing import Any

from django.core.management.base import BaseCommand

from sandbox.reset import reset_sandbox


class Command(BaseCommand):
    help = "Delete all sandbox state: Stripe and Calendly objects and webhook deliveries."

    def handle(self, *args: Any, **options: Any) -> None:
        counts = reset_sandbox()
        for label, count in counts.items():
            if count:
                self.stdout.write(f"  {label}: {count}")
        self.stdout.write(self.style.SUCCESS(f"Sandbox reset: {sum(counts.values())} rows."))
