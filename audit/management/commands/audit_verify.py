from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.management.commands.audit_checkpoint import describe_failures, verify_file
from audit.services import verify_chain


class Command(BaseCommand):
    help = (
        "Walk the audit chain and name the first entry that does not verify; with "
        "--checkpoints, also check an exported checkpoint file against it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--checkpoints",
            metavar="FILE",
            help="an export of audit_checkpoint: each checkpoint must match the chain",
        )
        parser.add_argument(
            "--public-key",
            action="append",
            default=[],
            dest="public_keys",
            help="another trusted checkpoint public key (base64)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = verify_chain()
        if not report.ok:
            where = (
                f"entry id={report.broken_at.pk} sequence={report.broken_at.sequence} "
                f"({report.broken_at.action})"
                if report.broken_at
                else "end of chain"
            )
            raise CommandError(f"Audit chain broken at {where}: {report.reason}.")
        checked = ""
        if options["checkpoints"]:
            checks = verify_file(options["checkpoints"], options["public_keys"])
            if not checks or not all(check.ok for check in checks):
                raise CommandError(
                    f"Audit chain verifies but checkpoints do not hold: "
                    f"{describe_failures(checks)}."
                )
            checked = f"; {len(checks)} checkpoints match it"
        self.stdout.write(
            self.style.SUCCESS(f"Audit chain verified: {report.entries} entries{checked}.")
        )
