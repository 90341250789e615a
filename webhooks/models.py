"""The inbox: every verified delivery, stored before it is acknowledged."""

from __future__ import annotations

from django.db import models

from core.encryption import EncryptedTextField


class Provider(models.TextChoices):
    STRIPE = "stripe", "Stripe"
    CALENDLY = "calendly", "Calendly"


class WebhookEvent(models.Model):
    """One provider event, once: (provider, event_id) is unique, so a redelivery is a no-op.

    ``payload`` is the raw body, encrypted (it holds names and emails); it is purged
    24 hours after processing, while the row itself stays as the dedup key for as
    long as the provider retries. ``headers`` keeps a few request headers with the
    signature values removed.
    """

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSING = "processing", "Processing"
        WAITING = "waiting", "Waiting for an earlier event"
        FAILED = "failed", "Failed, will retry"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored"
        DEAD = "dead", "Dead letter"

    class Source(models.TextChoices):
        DELIVERY = "delivery", "Delivered by the provider"
        # Stored by reconciliation: an event the provider's API lists (Stripe) or a fact
        # it reports (a Calendly cancellation) that no delivery brought. Same dedup key
        # as the delivery, so a late delivery of it is a duplicate.
        RECONCILIATION = "reconciliation", "Found by reconciliation"

    FINAL = (Status.PROCESSED, Status.IGNORED, Status.DEAD)
    # Statuses that the sweeper and the retry schedule pick up once next_attempt_at passes.
    PENDING = (Status.RECEIVED, Status.WAITING, Status.FAILED)

    provider = models.CharField(max_length=16, choices=Provider.choices)
    event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.DELIVERY)
    attempts = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField()
    # When processing may next be tried (received: now; failed/waiting: after the backoff).
    next_attempt_at = models.DateTimeField()
    # When the processing task was last published (noted just before publishing, cleared
    # when the publish fails): a task published after the last claim is on its way, and
    # the sweeper leaves the row to it for a while (services.events_stalled).
    enqueued_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    payload = EncryptedTextField(null=True, blank=True)
    payload_purged_at = models.DateTimeField(null=True, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "event_id"], name="webhooks_event_unique_per_provider"
            )
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhooks_due_idx"),
            models.Index(fields=["received_at"], name="webhooks_received_idx"),
            # The relay's question, answered from a few rows (webhooks/relay.py).
            models.Index(
                fields=["id"],
                condition=models.Q(status="received", enqueued_at__isnull=True),
                name="webhooks_unrelayed_idx",
            ),
        ]
        ordering = ["-received_at"]
        permissions = [("replay_webhookevent", "Can replay webhook events")]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type} {self.event_id}"


class WebhookRejection(models.Model):
    """How many deliveries were refused, per provider, reason and hour.

    A spike of ``signature_mismatch`` here is someone forging events or a secret
    rolled on one side only; the admin lists the counts.
    """

    provider = models.CharField(max_length=16, choices=Provider.choices)
    reason = models.CharField(max_length=40)
    hour = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)
    last_seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "reason", "hour"], name="webhooks_rejection_unique_hour"
            )
        ]
        ordering = ["-hour", "provider", "reason"]

    def __str__(self) -> str:
        return f"{self.provider} {self.reason} {self.hour:%Y-%m-%d %H}:00 x{self.count}"
