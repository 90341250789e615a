from __future__ import annotations

from django.db import models
from django.db.models import Q

from audit.categories import ActorType, Category
from core.encryption import EncryptedTextField

GENESIS_HASH = "0" * 64


class Stream(models.TextChoices):
    """One hash chain per retention class: each can lose its old segments on its own
    schedule without breaking the other's links."""

    SECURITY = "security", "Security (kept 1 year)"
    TRANSACTION = "transaction", "Transaction (kept 7 years)"


STREAM_OF_CATEGORY = {
    Category.SECURITY: Stream.SECURITY,
    Category.ACCESS: Stream.SECURITY,
    Category.TRANSACTION: Stream.TRANSACTION,
    Category.DATA: Stream.TRANSACTION,
}


class AuditEntry(models.Model):
    """One fact in the append-only, SHA-256 chained audit trail.

    ``sequence`` numbers every entry, gap-free across streams (until a purge). Each
    entry also belongs to one ``stream`` (its category's retention class) at a
    gap-free ``position``, and ``previous_hash`` is the hash of the entry before it in
    that stream. ``entry_hash`` covers every column except ``personal_data`` itself
    (it covers that part's digest instead, so an erasure can redact the personal data
    and the chain still verifies) and except ``stream`` and ``position``: entries
    written before streams existed did not hash them, and the links already pin an
    entry to its place (moved, it breaks the next link of both streams). On
    PostgreSQL a trigger refuses any UPDATE other than re-encrypting or redacting
    ``personal_data``, and any DELETE outside ``audit_purge_segment``.
    """

    sequence = models.PositiveBigIntegerField(unique=True)
    stream = models.CharField(max_length=16, choices=Stream.choices)
    position = models.PositiveBigIntegerField()
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
            # Verification's redaction check reads only these, not the whole table.
            models.Index(
                fields=["sequence"],
                condition=Q(personal_data__isnull=True) & ~Q(personal_data_digest=""),
                name="audit_redacted_idx",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["stream", "position"], name="audit_entry_unique_stream_position"
            )
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action}"


class AuditChainHead(models.Model):
    """The single row every writer locks first: the last sequence number (and the
    hash of the last entry appended, in whichever stream)."""

    sequence = models.PositiveBigIntegerField(default=0)
    entry_hash = models.CharField(max_length=64, default=GENESIS_HASH)

    def __str__(self) -> str:
        return f"head at #{self.sequence}"


class AuditStreamHead(models.Model):
    """A stream's last position and hash: what its next entry links to. Locked after
    the global head, always in that order."""

    stream = models.CharField(max_length=16, choices=Stream.choices, unique=True)
    position = models.PositiveBigIntegerField(default=0)
    entry_hash = models.CharField(max_length=64, default=GENESIS_HASH)

    def __str__(self) -> str:
        return f"{self.stream} head at {self.position}"


class AuditVerifiedPoint(models.Model):
    """How far a stream was last verified: the next incremental run starts here,
    once it has seen that the entry at ``position`` still has ``entry_hash``."""

    stream = models.CharField(max_length=16, choices=Stream.choices, unique=True)
    position = models.PositiveBigIntegerField()
    entry_hash = models.CharField(max_length=64)
    verified_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.stream} verified to {self.position}"


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
    """A signed statement closing a segment of one stream: "the entry at ``position``
    has this hash".

    The signed text is a C2SP checkpoint body (``audit.checkpoints``): origin (naming
    the stream), the stream's size, its head hash in base64, then the time, the
    segment's first position and entry count, and the previous checkpoint's hash.
    Exported and kept away from the database, a checkpoint catches a chain rewritten
    by someone who could switch the trigger off and rehash every entry, since they
    cannot sign without the key (AUDIT_CHECKPOINT_KEY lives outside the database);
    and it anchors what survives a purge of the segments before it. Never deleted:
    on PostgreSQL a trigger refuses UPDATE, DELETE and TRUNCATE.

    Checkpoints signed before streams existed have the bare origin, cover the
    transaction stream from position 1, and count every entry of the table.
    """

    stream = models.CharField(max_length=16, choices=Stream.choices)
    first_position = models.PositiveBigIntegerField()
    position = models.PositiveBigIntegerField()
    entry_hash = models.CharField(max_length=64)
    entry_count = models.PositiveBigIntegerField()
    # SHA-256 of the previous checkpoint's body in this stream, hex ("" for the first).
    previous_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField()
    body = models.TextField()
    signature = models.CharField(max_length=100)
    public_key = models.CharField(max_length=64)
    key_id = models.CharField(max_length=8)

    class Meta:
        ordering = ["-created_at", "-id"]
        get_latest_by = ["created_at", "id"]
        indexes = [models.Index(fields=["stream", "position"], name="audit_checkpoint_pos_idx")]

    def __str__(self) -> str:
        return f"{self.stream} checkpoint at {self.position} ({self.created_at:%Y-%m-%d %H:%M} UTC)"
