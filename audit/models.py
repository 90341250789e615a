from __future__ import annotations

from django.db import models

from audit.categories import ActorType, Category
from core.encryption import EncryptedTextField

GENESIS_HASH = "0" * 64


class AuditEntry(models.Model):
    """One fact in the append-only, SHA-256 chained audit trail.

    ``entry_hash`` covers every column except ``personal_data`` itself: it covers
    that part's digest instead, so an erasure can redact the personal data (set it
    to NULL) and the chain still verifies. On PostgreSQL a trigger refuses DELETE and
    any UPDATE other than re-encrypting or redacting ``personal_data``.
    """

    sequence = models.PositiveBigIntegerField(unique=True)
    created_at = models.DateTimeField()
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_id = models.CharField(max_length=100, blank=True)
    action = models.CharField(max_length=100, db_index=True)
    category = models.CharField(max_length=16, choices=Category.choices)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    data = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    # JSON {"nonce": ..., "values": {...}}, encrypted; the nonce keeps the digest
    # from confirming a guessed value.
    personal_data = EncryptedTextField(null=True, blank=True)
    personal_data_digest = models.CharField(max_length=64, blank=True)
    personal_data_redacted_at = models.DateTimeField(null=True, blank=True)
    previous_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["sequence"]
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["target_type", "target_id"], name="audit_target_idx"),
            models.Index(fields=["category", "created_at"], name="audit_category_time_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action}"


class AuditChainHead(models.Model):
    """The single row every writer locks: the last sequence number and hash."""

    sequence = models.PositiveBigIntegerField(default=0)
    entry_hash = models.CharField(max_length=64, default=GENESIS_HASH)

    def __str__(self) -> str:
        return f"head at #{self.sequence}"


class SecurityEventCount(models.Model):
    """How many times a security event happened, per action and hour.

    Failed sign-ins and lockouts come in floods, and each audit entry waits for the
    chain head's lock: every one is counted here, and only the first
    SECURITY_EVENT_AUDIT_LIMIT of an action each hour become entries
    (``audit.services.record_capped``). A count far above the limit is someone
    guessing passwords; the admin lists them.
    """

    action = models.CharField(max_length=100)
    hour = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)
    last_seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["action", "hour"], name="audit_event_count_unique_hour")
        ]
        ordering = ["-hour", "action"]

    def __str__(self) -> str:
        return f"{self.action} {self.hour:%Y-%m-%d %H}:00 x{self.count}"


class AuditCheckpoint(models.Model):
    """A signed statement of the chain's head: "entry #sequence has this hash".

    The signed text is a C2SP checkpoint body (``audit.checkpoints``): origin, the
    chain's size, its head hash in base64 and the time. Exported and kept away from
    the database, a checkpoint catches a chain rewritten by someone who could switch
    the trigger off and rehash every entry, since they cannot sign without the key
    (AUDIT_CHECKPOINT_KEY lives outside the database). On PostgreSQL a trigger
    refuses UPDATE and DELETE.
    """

    sequence = models.PositiveBigIntegerField()
    entry_hash = models.CharField(max_length=64)
    entry_count = models.PositiveBigIntegerField()
    created_at = models.DateTimeField()
    body = models.TextField()
    signature = models.CharField(max_length=100)
    public_key = models.CharField(max_length=64)
    key_id = models.CharField(max_length=8)

    class Meta:
        ordering = ["-created_at", "-id"]
        get_latest_by = ["created_at", "id"]

    def __str__(self) -> str:
        return f"checkpoint at #{self.sequence} ({self.created_at:%Y-%m-%d %H:%M} UTC)"
