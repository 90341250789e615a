from django.core.management.base import BaseCommand, CommandError

from audit.services import verify_chain


class Command(BaseCommand):
    help = "Walk the audit chain and name the first entry that does not verify."

    def handle(self, *args: object, **options: object) -> None:
        report = verify_chain()
        if not report.ok:
            where = (
                f"entry id={report.broken_at.pk} sequence={report.broken_at.sequence} "
                f"({report.broken_at.action})"
                if report.broken_at
                else "end of chain"
            )
            raise CommandError(f"Audit chain broken at {where}: {report.reason}.")
        self.stdout.write(self.style.SUCCESS(f"Audit chain verified: {report.entries} entries."))
