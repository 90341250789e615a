from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.management.commands.audit_checkpoint import describe_failures, verify_file
from audit.services import ChainReport, verify_chain


def _where(report: ChainReport) -> str:
    if report.broken_at is None:
        return "end of chain"
    entry = report.broken_at
    return (
        f"entry id={entry.pk} sequence={entry.sequence} {entry.stream} "
        f"position={entry.position} ({entry.action})"
    )


class Command(BaseCommand):
    help = (
        "Verify each stream of the audit log, from where it was last verified (or, with "
        "--full, from its start or its oldest surviving checkpoint), print what was "
        "verified per stream and how far integration lags (entries still queued, the "
        "oldest one's age), and name the first entry that does not verify; with "
        "--checkpoints, also check an exported checkpoint file against it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--full",
            action="store_true",
            help="verify every surviving entry, not only those since the last verification",
        )
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
            help="another trusted checkpoint public key (base64), e.g. one before a rotation",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = verify_chain(full=options["full"], extra_public_keys=options["public_keys"])
        except ValueError as exc:  # a --public-key that is not one
            raise CommandError(str(exc)) from exc
        for stream in report.streams:
            outcome = "ok" if stream.ok else f"broken: {stream.reason}"
            self.stdout.write(
                f"{stream.stream}: from {stream.since}, {stream.entries} entries, {outcome}"
            )
        if report.delay is not None:
            self.stdout.write(f"integration: {report.delay.describe()}")
        if not report.ok:
            raise CommandError(f"Audit chain broken at {_where(report)}: {report.reason}.")
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
