"""What the Stripe sandbox remembers: its objects, idempotent results and keys.

Every Stripe object (Checkout Session, PaymentIntent, Charge, Refund, Customer,
Dispute, Event) is one row holding exactly the JSON the API answers with; what only
the sandbox needs (line items, how a test payment settles) lives beside it in
``private`` so that it never leaks into a response.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class StripeObject(models.Model):
    # Ordered by ``seq`` (insertion) so that lists are newest first like Stripe's, even
    # when several objects share a ``created`` second.
    seq = models.BigAutoField(primary_key=True)
    id = models.CharField(max_length=100, unique=True)
    object = models.CharField(max_length=40, db_index=True)
    data = models.JSONField()
    private = models.JSONField(default=dict, blank=True)
    # The Stripe-Version of the request that created the object (its events carry it).
    api_version = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # When the sandbox must act on its own: expire an open session, settle a delayed
    # payment, open a dispute. Cleared by whoever claims the work.
    due_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-seq"]
        indexes = [models.Index(fields=["object", "-seq"])]

    def __str__(self) -> str:
        return self.id


class IdempotencyRecord(models.Model):
    """The first answer to a write, replayed for the same key (Stripe keeps them 24 h)."""

    key = models.CharField(max_length=255, unique=True)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=300)
    params_digest = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    body = models.JSONField()
    request_id = models.CharField(max_length=40)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.key})"


class RestrictedKey(models.Model):
    """A sandbox ``rk_test_`` key and what it may do, by resource:
    ``{"checkout_sessions": "write", "charges": "read", ...}`` (absent = none)."""

    class Access(models.TextChoices):
        NONE = "none", "None"
        READ = "read", "Read"
        WRITE = "write", "Write"

    name = models.CharField(max_length=100)
    key = models.CharField(max_length=120, unique=True)
    permissions = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    def allows(self, resource: str, access: str) -> bool:
        granted = self.permissions.get(resource, self.Access.NONE)
        if access == self.Access.READ:
            return granted in (self.Access.READ, self.Access.WRITE)
        return granted == self.Access.WRITE


class Slowdown(models.Model):
    """A knob: the next ``remaining`` API requests wait ``seconds`` before they are
    answered, as a slow Stripe would make them (its own timeouts run to 80 s)."""

    seconds = models.FloatField(default=10)
    remaining = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.remaining} answers {self.seconds:g} s late"
