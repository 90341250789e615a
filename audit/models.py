from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import models
from django.db.models import F, Q

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


def _in_chain_order(names: Iterable[Any]) -> list[Any]:
    """``sequence`` as the chain's order: queued entries (no sequence yet) after every
    integrated one, in the order their rows were written (id); ``-sequence`` the
    reverse, newest first."""
    ordering: list[Any] = []
    for name in names:
        if name == "sequence":
            ordering += [F("sequence").asc(nulls_last=True), "id"]
        elif name == "-sequence":
            ordering += [F("sequence").desc(nulls_first=True), "-id"]
        else:
            ordering.append(name)
    return ordering


class AuditEntryQuerySet(models.QuerySet["AuditEntry"]):
    """Ordering by ``sequence`` (``order_by``, ``latest``, ``earliest``, the admin's
    list) keeps its meaning while entries wait to be integrated: see
    ``_in_chain_order``. Without this a queued entry, whose sequence is NULL, would
    sort anywhere among the other queued ones (and first or last by database)."""

    def order_by(self, *field_names: Any) -> AuditEntryQuerySet:
        return super().order_by(*_in_chain_order(field_names))

    def _first_in(self, ordering: str) -> AuditEntry:
        found = list(self.order_by(ordering)[:1])
        if not found:
            raise self.model.DoesNotExist(
                f"{self.model._meta.object_name} matching query does not exist."
            )
        return found[0]

    def latest(self, *fields: Any) -> AuditEntry:
        if fields == ("sequence",):
            return self._first_in("-sequence")
        return super().latest(*fields)

    def earliest(self, *fields: Any) -> AuditEntry:
        if fields == ("sequence",):
            return self._first_in("sequence")
        return super().earliest(*fields)


class AuditEntry(models.Model):
    """One fact in the append-only, SHA-256 chained audit trail.

    An entry is written *queued* (``audit.record``, in the caller's transaction): its
    contents and their ``leaf_hash``, no place yet. The sequencer
    (``audit.sequencer``) integrates committed queued entries in batches: it gives
    each its ``sequence`` (gap-free across streams, until a purge), its gap-free
    ``position`` in its ``stream`` (its category's retention class), the
    ``previous_hash`` (the hash of the entry before it in that stream) and its
    ``entry_hash``; ``integrated_at`` says when. Queued entries are rows like any other
    (admin, exports), with no place and no chain hash.

    ``entry_hash`` covers every column except ``personal_data`` itself (it covers that
    part's digest instead, so an erasure can redact the personal data and the chain
    still verifies) and ``integrated_at`` (when, not what). Entries written before the
    sequencer (``leaf_hash`` empty) did not hash ``stream`` and ``position``: the links
    pin them to their place (moved, an entry breaks the next link of both streams);
    ``audit.chain`` has both formats. On PostgreSQL a trigger refuses any UPDATE other
    than the one integration of a queued entry and re-encrypting or redacting
    ``personal_data``, and any DELETE outside ``audit_purge_segment``.
    """

    # The place: None while the entry is queued.
    sequence = models.PositiveBigIntegerField(unique=True, null=True, blank=True)
    stream = models.CharField(max_length=16, choices=Stream.choices)
    position = models.PositiveBigIntegerField(null=True, blank=True)
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
    # SHA-256 of the contents (chain.LEAF_FIELDS); "" on entries written before the
    # sequencer.
    leaf_hash = models.CharField(max_length=64, blank=True)
    previous_hash = models.CharField(max_length=64, blank=True)
    entry_hash = models.CharField(max_length=64, unique=True, null=True, blank=True)
    integrated_at = models.DateTimeField(null=True, blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = [F("sequence").asc(nulls_last=True), "id"]
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
            # The sequencer's queue: small, since entries leave it when integrated.
            models.Index(
                fields=["id"], condition=Q(sequence__isnull=True), name="audit_queued_idx"
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["stream", "position"], name="audit_entry_unique_stream_position"
            ),
            # Queued (no place at all) or placed (all of it, from 1): a row with half a
            # place would stop the sequencer, and a place 0 would hide an entry before
            # the first one verification walks (an outside review did both by hand).
            # "IS NOT NULL" said outright: a CHECK that comes out NULL passes.
            models.CheckConstraint(
                condition=(
                    Q(sequence__isnull=True, position__isnull=True, entry_hash__isnull=True)
                    | Q(
                        sequence__isnull=False,
                        position__isnull=False,
                        entry_hash__isnull=False,
                        sequence__gte=1,
                        position__gte=1,
                    )
                ),
                name="audit_entry_placed_whole",
            ),
        ]

    def __str__(self) -> str:
        place = f"#{self.sequence}" if self.sequence is not None else f"queued {self.pk}"
        return f"{place} {self.action}"

    @property
    def integrated(self) -> bool:
        return self.sequence is not None


class AuditChainHead(models.Model):
    """The single row the sequencer locks for each batch it integrates (and a
    checkpoint while it signs): the last sequence number given (and the hash of the
    last entry integrated, in whichever stream). Writers never lock it."""

    sequence = models.PositiveBigIntegerField(default=0)
    entry_hash = models.CharField(max_length=64, default=GENESIS_HASH)

    def __str__(self) -> str:
        return f"head at #{self.sequence}"


class AuditStreamHead(models.Model):
    """A stream's last position and hash: what its next entry links to. Locked after
    the global head, always in that order (by the sequencer and checkpoints)."""

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

    Failed sign-ins and lockouts come in floods, and each audit entry is a row to
    store, integrate and keep for a year: every one is counted here, and only the first
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
