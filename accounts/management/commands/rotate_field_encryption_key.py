"""Re-encrypt every encrypted field with the newest FIELD_ENCRYPTION_KEY.

Put the new key first in FIELD_ENCRYPTION_KEY (keep the old ones after it), run
this, then remove the old keys. A stopped run resumes where it left off: progress
is checkpointed per model and key in accounts.FieldKeyRotation. Once every model is
done it runs verify_field_encryption, and reports the rotation complete only if
every stored value then decrypts with the new key alone.
"""

from __future__ import annotations

import contextlib
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import models, transaction
from django.utils import timezone
from tqdm import tqdm

from accounts.models import FieldKeyRotation, FieldKeyVerification
from audit import Category, record
from core.encryption import encrypted_fields, encrypting_key_fingerprint


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument(
            "--restart", action="store_true", help="Ignore the checkpoint and start over."
        )
        parser.add_argument(
            "--limit",
            type=int,
            default=None,
            help="Stop after this many rows (to rotate in slices; run again to resume).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        fingerprint = encrypting_key_fingerprint()
        if options["restart"]:
            FieldKeyRotation.objects.filter(key_fingerprint=fingerprint).delete()
        budget = options["limit"]
        counts: dict[str, int] = {}
        previously = sum(
            FieldKeyRotation.objects.filter(key_fingerprint=fingerprint).values_list(
                "rows_done", flat=True
            )
        )
        for model, names in encrypted_fields():
            checkpoint, _ = FieldKeyRotation.objects.get_or_create(
                key_fingerprint=fingerprint, model_label=model._meta.label
            )
            if checkpoint.finished_at:
                continue
            done = self._rotate_model(model, names, checkpoint, options["batch_size"], budget)
            counts[model._meta.label] = done
            if budget is not None:
                budget -= done
                if budget <= 0:
                    break

        total = sum(counts.values())
        finished_labels = set(
            FieldKeyRotation.objects.filter(
                key_fingerprint=fingerprint, finished_at__isnull=False
            ).values_list("model_label", flat=True)
        )
        finished = all(model._meta.label in finished_labels for model, _ in encrypted_fields())
        for label, count in counts.items():
            self.stdout.write(f"  {label}: {count} rows re-encrypted")
        summary = (
            f"{total} rows re-encrypted in {len(counts)} models this run, {previously} rows "
            "done by earlier runs"
        )
        data = {"key_fingerprint": fingerprint, "rows": total, "models": counts}
        if not finished:
            self._audit("accounts.field_encryption_key.rotation_paused", data)
            self.stdout.write(
                self.style.SUCCESS(
                    f"Rotation to key {fingerprint} paused (run again to resume): {summary}."
                )
            )
            return

        self.stdout.write(f"Every row re-encrypted; verifying under key {fingerprint}:")
        # A failure lists the values and is recorded: the recorded verification decides.
        with contextlib.suppress(CommandError):
            call_command(
                "verify_field_encryption",
                batch_size=options["batch_size"],
                stdout=self.stdout,
                stderr=self.stderr,
            )
        verification = FieldKeyVerification.objects.filter(key_fingerprint=fingerprint).latest()
        if not verification.complete:
            self._audit("accounts.field_encryption_key.rotation_unverified", data)
            raise CommandError(
                f"Rotation to key {fingerprint} is not complete: after re-encrypting every "
                f"row, {verification.undecryptable_values} values do not decrypt and "
                f"{verification.older_key_values} are under older keys (written by a process "
                "still configured with an older key first?). Keep the older keys, make every "
                "process use the new key first, then run this again with --restart."
            )
        self._audit("accounts.field_encryption_key.rotated", data)
        self.stdout.write(
            self.style.SUCCESS(
                f"Rotation to key {fingerprint} complete: {summary}; verified, every stored "
                "value decrypts with it alone, so the older keys can be removed."
            )
        )

    def _audit(self, action: str, data: dict[str, Any]) -> None:
        record(
            action,
            category=Category.SECURITY,
            actor="manage.py rotate_field_encryption_key",
            data=data,
        )

    def _rotate_model(
        self,
        model: type[models.Model],
        names: list[str],
        checkpoint: FieldKeyRotation,
        batch_size: int,
        budget: int | None,
    ) -> int:
        remaining = model._default_manager.filter(pk__gt=checkpoint.last_pk)
        total = remaining.count()
        if budget is not None:
            total = min(total, budget)
        done = 0
        with tqdm(total=total, desc=model._meta.label, unit="row", file=self.stderr) as bar:
            while budget is None or done < budget:
                size = batch_size if budget is None else min(batch_size, budget - done)
                with transaction.atomic():
                    # Lock the batch so a concurrent edit is not overwritten by our copy.
                    batch = list(
                        model._default_manager.select_for_update()
                        .filter(pk__gt=checkpoint.last_pk)
                        .order_by("pk")
                        .only("pk", *names)[:size]
                    )
                    if not batch:
                        break
                    for row in batch:
                        # Not bulk_update: the library would encrypt its CASE expression.
                        model._default_manager.filter(pk=row.pk).update(
                            **{name: getattr(row, name) for name in names}
                        )
                    checkpoint.last_pk = batch[-1].pk
                    checkpoint.rows_done += len(batch)
                    checkpoint.save(update_fields=["last_pk", "rows_done", "updated_at"])
                done += len(batch)
                bar.update(len(batch))
        if not model._default_manager.filter(pk__gt=checkpoint.last_pk).exists():
            checkpoint.finished_at = timezone.now()
            checkpoint.save(update_fields=["finished_at", "updated_at"])
        return done
