from __future__ import annotations

from django.db import models
from django.utils import timezone


class Delivery(models.Model):
    """One webhook event the sandbox must deliver, retried until it is answered 2xx
    or the retry budget runs out, as Stripe and Calendly do."""

    class Provider(models.TextChoices):
        STRIPE = "stripe", "Stripe"
        CALENDLY = "calendly", "Calendly"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Gave up"

    provider = models.CharField(max_length=16, choices=Provider.choices)
    event_type = models.CharField(max_length=100)
    event_id = models.CharField(max_length=100, blank=True)
    url = models.URLField(max_length=500)
    body = models.TextField()
    # Sandbox test secrets only: each attempt is signed afresh with a new timestamp.
    signing_secret = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type} → {self.url}"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    attempted_at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    response_excerpt = models.CharField(max_length=300, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
