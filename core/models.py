"""The transactional outbox: work to do after a commit, stored by that commit."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from core.encryption import EncryptedTextField


class OutboxMessage(models.Model):
    """One task to publish, written in the same transaction as the change that needs it.

    A broker that is down when the transaction commits (or a process that dies just
    after) delays the task, never loses it: the relay publishes every row not yet
    sent. ``payload`` (the task's arguments) is encrypted: an email's text is personal
    data. ``dedup_key`` makes enqueueing the same work twice a no-op.
    """

    task = models.CharField(max_length=200)
    payload = EncryptedTextField()  # JSON {"args": [...], "kwargs": {...}}
    dedup_key = models.CharField(max_length=200, unique=True, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Not before this time (a countdown); then the relay sends it on its next pass.
    available_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["available_at"],
                condition=models.Q(sent_at__isnull=True),
                name="core_outbox_unsent_idx",
            ),
            models.Index(fields=["sent_at"], name="core_outbox_sent_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.task} #{self.pk} ({'sent' if self.sent_at else 'waiting'})"
