"""Decrypt every stored value of every encrypted column, and record the result.

``manage.py check`` samples only the oldest and newest value of each column, which a
partial key rotation fools (it re-encrypts in pk order, and new rows use the new
key). This reads every row, raw, in batches by primary key; lists each value that
does not decrypt by model, pk and field (never the value) and then exits non-zero;
counts the values still under older keys; and records the scan, so that the check
can tell the data was verified under the current key.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from accounts.models import FieldKeyVerification
from audit import Category, record
from core.encryption import encrypted_fields, encrypting_key_fingerprint, scan_encrypted_model


class Command(BaseCommand):
    help = __doc__
    # slotpay.E007 (a sample that does not decrypt) must not stop the command that
    # says which values do not.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        fingerprint = encrypting_key_fingerprint()
        started_at = timezone.now()
        rows = older = 0
        undecryptable: list[str] = []
        for model, names in encrypted_fields():
            label = model._meta.label
            total = model._base_manager.count()
            with tqdm(total=total, desc=label, unit="row", file=self.stderr) as bar:
                scan = scan_encrypted_model(
                    model, names, batch_size=options["batch_size"], on_batch=bar.update
                )
            rows += scan.rows
            older += scan.older_key_values
            undecryptable += [f"{label} pk={pk} {name}" for pk, name in scan.undecryptable]
            self.stdout.write(
                f"  {label}: {scan.rows} rows, {scan.older_key_values} values under older "
                f"keys, {len(scan.undecryptable)} that do not decrypt"
            )
        for failure in undecryptable:
            self.stdout.write(f"  does not decrypt: {failure}")
        with transaction.atomic():
            FieldKeyVerification.objects.create(
                key_fingerprint=fingerprint,
                started_at=started_at,
                rows=rows,
                older_key_values=older,
                undecryptable_values=len(undecryptable),
            )
            record(
                "accounts.field_encryption_key.verified",
                category=Category.SECURITY,
                actor="manage.py verify_field_encryption",
                data={
                    "key_fingerprint": fingerprint,
                    "rows": rows,
                    "older_key_values": older,
                    "undecryptable_values": len(undecryptable),
                },
            )
        if undecryptable:
            raise CommandError(
                f"{len(undecryptable)} stored values do not decrypt with any key in "
                "FIELD_ENCRYPTION_KEY (listed above): put back the key they were "
                "encrypted with, after the current one."
            )
        if older:
            self.stdout.write(
                self.style.WARNING(
                    f"Every value of {rows} rows decrypts, but {older} only with a key "
                    f"after {fingerprint}: run manage.py rotate_field_encryption_key before "
                    "removing the older keys."
                )
            )
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Verified under key {fingerprint}: every value of {rows} rows decrypts "
                "with it alone; the older keys can be removed."
            )
        )
