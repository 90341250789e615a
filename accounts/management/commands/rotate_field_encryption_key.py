"""Re-encrypt every encrypted field with the newest FIELD_ENCRYPTION_KEY.

Put the new key first in FIELD_ENCRYPTION_KEY (keep the old ones after it), run
this, then remove the old keys. A stopped run resumes where it left off: progress
is checkpointed per model and key in accounts.FieldKeyRotation.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import models, transaction
from django.utils import timezone
from tqdm import tqdm

from accounts.models import FieldKeyRotation
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
        record(
            "accounts.field_encryption_key.rotated"
            if finished
            else "accounts.field_encryption_key.rotation_paused",
            category=Category.SECURITY,
            actor="manage.py rotate_field_encryption_key",
            data={"key_fingerprint": fingerprint, "rows": total, "models": counts},
        )
        state = "complete" if finished else "paused (run again to resume)"
        self.stdout.write(
            self.style.SUCCESS(
                f"Rotation to key {fingerprint} {state}: {total} rows re-encrypted in "
                f"{len(counts)} models this run, {previously} rows done by earlier runs."
            )
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
