"""Signed checkpoints of the audit streams: write them, export them all, verify an export.

    manage.py audit_checkpoint write           (one per stream that grew since its last)
    manage.py audit_checkpoint export --output checkpoints.jsonl
    manage.py audit_checkpoint verify checkpoints.jsonl [--public-key BASE64 ...]

Keep the exports away from the database (another machine, write-once storage): a
chain rewritten by someone who could also rewrite the database is caught by an
exported checkpoint, which they cannot sign again without AUDIT_CHECKPOINT_KEY.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.checkpoints import (
    ChainBrokenError,
    CheckpointCheck,
    checkpoints_export,
    checkpoints_verify,
    checkpoints_write,
)


def cli_actor() -> str:
    """Who ran a command, as the audit trail names them: the operating-system user."""
    return f"cli:{getpass.getuser()}"


def verify_file(path: str, extra_public_keys: list[str]) -> list[CheckpointCheck]:
    try:
        with Path(path).open(encoding="utf-8") as lines:
            return checkpoints_verify(lines, extra_public_keys=extra_public_keys)
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror}.") from exc
    except ValueError as exc:  # a --public-key that is not one
        raise CommandError(str(exc)) from exc


def describe_failures(checks: list[CheckpointCheck]) -> str:
    failed = [check for check in checks if not check.ok]
    if not checks:
        return "the file holds no checkpoint"
    return "; ".join(f"{check.label}: {check.reason}" for check in failed)


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="command", required=True)
        commands.add_parser("write", help="sign a checkpoint of each stream's head now")
        export = commands.add_parser("export", help="write every checkpoint to a JSONL file")
        export.add_argument("--output", required=True, help="the file to write")
        verify = commands.add_parser("verify", help="check an exported file against the chain")
        verify.add_argument("file")
        verify.add_argument(
            "--public-key",
            action="append",
            default=[],
            dest="public_keys",
            help="another trusted public key (base64), e.g. the one before a rotation",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"_{options['command']}")(options)

    def _write(self, options: dict[str, Any]) -> None:
        try:
            written = checkpoints_write(actor=cli_actor())
        except ChainBrokenError as exc:
            raise CommandError(f"No checkpoint written: {exc}.") from exc
        if not written:
            self.stdout.write("No stream grew since its last checkpoint: nothing to sign.")
        for checkpoint in written:
            self.stdout.write(self.style.SUCCESS(f"Checkpoint written: {checkpoint}."))

    def _export(self, options: dict[str, Any]) -> None:
        text = checkpoints_export(actor=cli_actor())
        try:
            Path(options["output"]).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot write {options['output']}: {exc.strerror}.") from exc
        count = text.count("\n")
        self.stdout.write(
            self.style.SUCCESS(f"{count} checkpoints written to {options['output']}.")
        )

    def _verify(self, options: dict[str, Any]) -> None:
        checks = verify_file(options["file"], options["public_keys"])
        if not checks or not all(check.ok for check in checks):
            raise CommandError(f"Checkpoints do not hold: {describe_failures(checks)}.")
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(checks)} checkpoints verified: each signature holds and the chain "
                "still has each signed hash (or purged it after its retention)."
            )
        )
