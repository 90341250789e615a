"""The transactional outbox: work to do after a commit, stored by that commit."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from core.encryption import EncryptedTextField


class OutboxMessage(models.Model):
    """One task to publish, written in the same transaction as the change that needs it.

    A broker that is down when the transaction commits (or a process that dies just
    after), a worker killed mid-task or a Redis restarted empty delays the task, never
    loses it: the relay publishes every row not yet done (core/outbox.py).
    ``payload`` (the task's arguments) is encrypted: an email's text is personal data;
    the broker only ever carries the row's id. ``dedup_key`` makes enqueueing the
    same work twice a no-op.
    """

    task = models.CharField(max_length=200)
    payload = EncryptedTextField()  # JSON {"args": [...], "kwargs": {...}}
    dedup_key = models.CharField(max_length=200, unique=True, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Not before this time (a countdown); then the relay sends it on its next pass.
    available_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    # The current publish: only the message carrying it runs the task (core/outbox.py).
    publish_id = models.CharField(max_length=32, blank=True, default="")
    # When a worker ran the task to an end; until then a row sent long ago is sent again.
    done_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["available_at"],
                condition=models.Q(sent_at__isnull=True),
                name="core_outbox_unsent_idx",
            ),
            models.Index(fields=["sent_at"], name="core_outbox_sent_idx"),
            models.Index(
                fields=["sent_at"],
                condition=models.Q(done_at__isnull=True),
                name="core_outbox_in_flight_idx",
            ),
            models.Index(fields=["done_at"], name="core_outbox_done_idx"),
        ]

    def __str__(self) -> str:
        state = "done" if self.done_at else "sent" if self.sent_at else "waiting"
        return f"{self.task} #{self.pk} ({state})"


class Alert(models.Model):
    """One incident a person must look at (core/alerts.py): open from the first time
    it is raised until it is cleared, however often it is raised meanwhile.

    At most one open row per ``key`` (a partial unique constraint): two processes
    raising the same problem at once make one incident and send one email. Rows hold
    what a watchdog wrote (counts, names of keys and rules), never personal data.
    """

    key = models.CharField(max_length=200)
    summary = models.CharField(max_length=500)
    # The staff group told when neither ALERT_EMAILS nor ADMINS is set; kept so the
    # recovery message reaches the people the alert reached.
    group = models.CharField(max_length=150, default="Finance")
    opened_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)
    times_seen = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = [models.F("cleared_at").desc(nulls_first=True), "-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["key"],
                condition=models.Q(cleared_at__isnull=True),
                name="core_alert_one_open_per_key",
            )
        ]
        indexes = [models.Index(fields=["opened_at"], name="core_alert_opened_idx")]

    def __str__(self) -> str:
        return f"{self.key} ({'cleared' if self.cleared_at else 'open'})"

    @property
    def is_open(self) -> bool:
        return self.cleared_at is None
