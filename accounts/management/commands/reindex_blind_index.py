"""Recompute every user's email blind index under the first BLIND_INDEX_KEY.

Put a new key first in BLIND_INDEX_KEY (keep the old one after it: sign-in tries
every key, so users not yet re-indexed still sign in), run this, then remove the old
key. Each index is recomputed from the decrypted email, so a user indexed under a key
that is no longer configured is repaired too. Rows already under the current key are
skipped, so a stopped run resumes where it left off. Keys are named by fingerprint
only, in the output and in the audit entry.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError, transaction
from django.db.models import Count
from tqdm import tqdm

from accounts.models import User
from audit import Category, record
from core.encryption import blind_index, blind_index_key_fingerprint


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument(
            "--limit",
            type=int,
            default=None,
            help="Stop after this many rows (to re-index in slices; run again to resume).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size, limit = options["batch_size"], options["limit"]
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        fingerprint = blind_index_key_fingerprint()
        pending = User.objects.exclude(email_index_key=fingerprint)
        previous_keys = dict(
            pending.values_list("email_index_key").annotate(rows=Count("pk")).order_by()
        )
        total = sum(previous_keys.values())
        done, last_pk, conflicts = 0, 0, []
        with tqdm(
            total=total if limit is None else min(total, limit),
            desc="accounts.User",
            unit="row",
            file=self.stderr,
        ) as bar:
            while limit is None or done < limit:
                size = batch_size if limit is None else min(batch_size, limit - done)
                with transaction.atomic():
                    # Locked, so that a concurrent change of address is not undone.
                    batch = list(
                        pending.select_for_update()
                        .filter(pk__gt=last_pk)
                        .order_by("pk")
                        .only("pk", "email")[:size]
                    )
                    if not batch:
                        break
                    conflicts += self._reindex(batch, fingerprint)
                last_pk = batch[-1].pk
                done += len(batch)
                bar.update(len(batch))

        remaining = pending.count()
        record(
            "accounts.blind_index.reindexed"
            if not remaining
            else "accounts.blind_index.reindex_paused",
            category=Category.SECURITY,
            actor="manage.py reindex_blind_index",
            data={
                "key_fingerprint": fingerprint,
                "rows": done - len(conflicts),
                "previous_keys": previous_keys,
                "remaining": remaining,
            },
        )
        self.stdout.write(f"  accounts.User: {done - len(conflicts)} rows re-indexed")
        if conflicts:
            raise CommandError(
                f"Users {', '.join(map(str, conflicts))} have the email address of another "
                "user (each was unique only under its own key): merge or change them, then "
                "run this again."
            )
        state = "complete" if not remaining else f"paused, {remaining} rows left (run again)"
        self.stdout.write(
            self.style.SUCCESS(f"Re-index under blind-index key {fingerprint} {state}.")
        )

    def _reindex(self, batch: list[User], fingerprint: str) -> list[int]:
        """Re-index ``batch``; the pks of rows whose new index another user holds."""
        for user in batch:
            user.email_index = blind_index(user.email)
            user.email_index_key = fingerprint
        try:
            with transaction.atomic():
                # Not save(): nothing but the index changes, and no signal should fire.
                User.objects.bulk_update(batch, ["email_index", "email_index_key"])
        except IntegrityError:
            pass
        else:
            return []
        conflicts = []
        for user in batch:
            try:
                with transaction.atomic():
                    User.objects.filter(pk=user.pk).update(
                        email_index=user.email_index, email_index_key=fingerprint
                    )
            except IntegrityError:
                conflicts.append(user.pk)
        return conflicts
