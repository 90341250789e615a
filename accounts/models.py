from __future__ import annotations

import zoneinfo
from datetime import timedelta
from typing import Any, ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from core.encryption import (
    EncryptedCharField,
    EncryptedEmailField,
    EncryptedTextField,
    blind_index,
    blind_index_key_fingerprint,
    blind_indexes,
)

# Files in the zone database that are not zones a person lives in: "localtime" is
# the server's own, whatever that is.
NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


def validate_time_zone(value: str) -> None:
    if value in NOT_ZONES or value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone.")


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def get_by_natural_key(self, username: str | None) -> User:
        # The natural key is the email the person types, looked up by its blind index
        # under every BLIND_INDEX_KEY (a re-index may be under way).
        return self.get(email_index__in=blind_indexes(username or ""))

    def get_by_email(self, email: str) -> User:
        return self.get(email_index__in=blind_indexes(email))

    def email_taken(self, email: str, *, other_than: Any = None) -> bool:
        """Whether an account other than ``other_than`` (a pk) has ``email``: under
        every key, since during a re-index the address may be under an older one."""
        taken = self.filter(email_index__in=blind_indexes(email))
        if other_than is not None:
            taken = taken.exclude(pk=other_than)
        return taken.exists()

    def _create_user(self, email: str | None, password: str | None, **extra: Any) -> User:
        # createsuperuser passes the prompt's value under the USERNAME_FIELD name.
        email = email or extra.pop("email_index", None)
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=email.strip(), **extra)
        user.set_password(password)
        user.full_clean(exclude=["password", "email_index"])
        user.save(using=self._db)
        return user

    def create_user(
        self, email: str | None = None, password: str | None = None, **extra: Any
    ) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        # Made by a command or by code for a known person; sign-up passes None, and the
        # account stays unverified until its link is followed.
        extra.setdefault("email_verified_at", timezone.now())
        return self._create_user(email, password, **extra)

    def create_superuser(
        self, email: str | None = None, password: str | None = None, **extra: Any
    ) -> User:
        extra["is_staff"] = True
        extra["is_superuser"] = True
        extra.setdefault("email_verified_at", timezone.now())
        return self._create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in: a client, a builder's member or staff.

    The email and name are personal data, stored encrypted; ``email_index`` (a keyed
    HMAC of the normalised email) is what login, uniqueness and look-ups use, and
    ``email_index_key`` names the BLIND_INDEX_KEY it was computed with.
    """

    email = EncryptedEmailField("email address")
    email_index = models.CharField("email address", max_length=64, unique=True, editable=False)
    email_index_key = models.CharField(
        max_length=32, db_index=True, editable=False, help_text="Fingerprint of the index's key."
    )
    name = EncryptedCharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="Can sign in to the back-office.")
    # The zone every time is shown in to this person; empty: the booking's own zone for a
    # client, the builder's for a builder's member, UTC in the back-office.
    time_zone = models.CharField(
        max_length=64, blank=True, validators=[validate_time_zone], help_text="IANA time zone."
    )
    date_joined = models.DateTimeField(default=timezone.now)
    # Set when the person followed the link emailed to ``email``; an account without
    # it can browse but not book. Cleared when the email changes.
    email_verified_at = models.DateTimeField(null=True, blank=True, editable=False)
    # "Sign out everywhere": a session that began before this is refused.
    sessions_valid_after = models.DateTimeField(null=True, blank=True, editable=False)

    objects = UserManager()

    USERNAME_FIELD = "email_index"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        ordering = ["id"]
        permissions = [
            ("reveal_personal_data", "Can reveal masked personal data, with a reason"),
            ("view_personal_data", "Can see clients' personal data in clear"),
        ]

    def __str__(self) -> str:
        return f"User {self.pk}"

    def clean(self) -> None:
        # AbstractBaseUser.clean would normalise the USERNAME_FIELD (our index): skip.
        self.email = self.__class__.objects.normalize_email(self.email.strip())
        if (self.is_staff or self.is_superuser) and self.pk and self.memberships.exists():
            # The form says so; save() refuses it anyway (accounts.rights).
            raise ValidationError(
                {"is_staff": "This account is a builder's member: end its memberships first."}
            )

    def get_full_name(self) -> str:
        return self.name

    def get_short_name(self) -> str:
        return self.name.split(" ")[0] if self.name else ""

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.email_index = blind_index(self.email)
        self.email_index_key = blind_index_key_fingerprint()
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "email" in update_fields:
            kwargs["update_fields"] = {*update_fields, "email_index", "email_index_key"}
        if update_fields is None or "email" in update_fields:
            self._refuse_email_indexed_under_older_key()
        # Set by set_password() until saved (Django keeps it to signal the change).
        password_changed = getattr(self, "_password", None) is not None and not self._state.adding
        from accounts import rights

        with transaction.atomic():
            changed = rights.check_user_save(self, self._stored_rights(update_fields))
            super().save(*args, **kwargs)
            if changed:
                rights.audit_rights_changed(self, changed)
            if password_changed:
                from audit import Category, record

                record(
                    "accounts.user.password_changed",
                    category=Category.SECURITY,
                    # Whoever set it: an admin in the back-office, else the person.
                    actor=rights.acting_user() or self,
                    target=self,
                )

    def _stored_rights(self, update_fields: Any) -> dict[str, Any] | None:
        """The rights fields as stored (None for a new user); skipped, with nothing to
        compare, when a save names fields that are not rights (``last_login``)."""
        if self._state.adding or self.pk is None:
            return None
        watched = ("is_staff", "is_superuser", "is_active")
        if update_fields is not None and not set(update_fields) & set(watched):
            return {name: getattr(self, name) for name in watched}
        stored = type(self).objects.filter(pk=self.pk).values(*watched).first()
        return stored

    def _refuse_email_indexed_under_older_key(self) -> None:
        """The unique constraint compares indexes under one key only: while a
        re-index is under way, the same address under an older key is a duplicate
        the database cannot see."""
        older = blind_indexes(self.email)[1:]
        if older and type(self).objects.filter(email_index__in=older).exclude(pk=self.pk).exists():
            raise IntegrityError("Another user has this email address (under an older index key).")


class Builder(models.Model):
    """A provider organisation (the tenant): its members see its bookings only."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    members = models.ManyToManyField(User, through="BuilderMembership", related_name="builders")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class BuilderMembership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        MEMBER = "member", "Member"

    builder = models.ForeignKey(Builder, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["builder", "user"], name="unique_builder_member"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.builder} ({self.role})"


class EncryptionCanary(models.Model):
    """One row encrypted at migrate time, so a wrong key is caught before any
    personal data has been stored with it (see config.checks)."""

    PLAINTEXT = "slotpay-encryption-canary"

    value = EncryptedCharField(max_length=64)

    def __str__(self) -> str:
        return "encryption canary"


class FieldKeyRotation(models.Model):
    """Checkpoint of ``rotate_field_encryption_key``: how far each model has been
    re-encrypted under the key with this fingerprint, so a stopped run resumes."""

    key_fingerprint = models.CharField(max_length=32)
    model_label = models.CharField(max_length=100)
    last_pk = models.BigIntegerField(default=0)
    rows_done = models.BigIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["key_fingerprint", "model_label"], name="unique_rotation_checkpoint"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model_label} under {self.key_fingerprint}"


class FieldKeyVerification(models.Model):
    """One full scan by ``verify_field_encryption``. ``manage.py check`` only samples
    each column's oldest and newest value, which a partial rotation fools; it reads
    these to tell whether the data was verified under the current key since the last
    rotation."""

    key_fingerprint = models.CharField(max_length=32, help_text="The first key at the time.")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(default=timezone.now)
    rows = models.BigIntegerField()
    older_key_values = models.BigIntegerField(help_text="Decrypt with an older key only.")
    undecryptable_values = models.BigIntegerField(help_text="Decrypt with no key.")

    class Meta:
        get_latest_by = "started_at"

    def __str__(self) -> str:
        return f"verification under {self.key_fingerprint} at {self.finished_at:%Y-%m-%d %H:%M}"

    @property
    def complete(self) -> bool:
        """Every value decrypts with the first key alone: the older keys can go."""
        return not self.older_key_values and not self.undecryptable_values


DSR_RESPONSE_DAYS = 30


class DataSubjectRequest(models.Model):
    """A person's request about the data we hold on them (GDPR Art. 15-17), answered
    within a month of receipt (Art. 12(3)). The subject is an account, found by email
    through the blind index; what is done is in ``accounts.dsr``."""

    class Kind(models.TextChoices):
        ACCESS = "access", "Access (export)"
        RECTIFICATION = "rectification", "Rectification"
        ERASURE = "erasure", "Erasure"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        IN_PROGRESS = "in_progress", "In progress"
        HELD = "held", "Held (legal hold)"
        COMPLETED = "completed", "Completed"
        REJECTED = "rejected", "Rejected"

    OPEN_STATUSES = (Status.OPEN, Status.IN_PROGRESS, Status.HELD)

    subject = models.ForeignKey(User, on_delete=models.PROTECT, related_name="data_requests")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    received_at = models.DateTimeField(default=timezone.now)
    # Received + DSR_RESPONSE_DAYS unless set (an extension is told to the person).
    due_at = models.DateTimeField(blank=True)
    handler = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    filed_by_subject = models.BooleanField(
        default=False, help_text="Filed by the person from their account page."
    )
    # Free text by staff: it may name people, so it is encrypted (and wiped by an erasure).
    notes = EncryptedTextField(blank=True, default="")
    # Why the request (or part of it) waits: an open dispute, a pending refund, ...
    hold_reason = models.TextField(blank=True)
    # The prepared access export (JSON), encrypted; a new preparation bumps the version,
    # which every signed download link names, so older links stop working.
    export = EncryptedTextField(null=True, blank=True)
    export_prepared_at = models.DateTimeField(null=True, blank=True)
    export_version = models.PositiveIntegerField(default=0)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_at", "id"]
        verbose_name = "data-subject request"
        permissions = [("carry_out_erasure", "Can carry out an erasure")]
        constraints = [
            models.UniqueConstraint(
                fields=["subject", "kind"],
                condition=models.Q(status__in=["open", "in_progress", "held"]),
                name="accounts_one_open_request_per_kind",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} request {self.pk}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.due_at is None:
            self.due_at = self.received_at + timedelta(days=DSR_RESPONSE_DAYS)
        super().save(*args, **kwargs)

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    @property
    def is_overdue(self) -> bool:
        return self.is_open and self.due_at < timezone.now()


class ErasureStep(models.Model):
    """One step of an erasure and its outcome: each is idempotent, so a step that
    failed (a provider was down) or was held is simply run again."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        HELD = "held", "Held"
        FAILED = "failed", "Failed, to retry"

    request = models.ForeignKey(DataSubjectRequest, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=64)
    position = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # What a provider step needs after the account is anonymised (the emails to send to
    # Calendly, Stripe's ids): encrypted, and cleared once the step is done.
    arguments = EncryptedTextField(null=True, blank=True)
    outcome = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["request", "position"]
        constraints = [
            models.UniqueConstraint(fields=["request", "name"], name="accounts_unique_erasure_step")
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.status}"


class OneTimeLink(models.Model):
    """A link emailed to someone that works once, for one purpose, until it expires.

    Only a digest of the link's secret is stored (the secret is in the email alone); the
    link is spent by setting ``used_at`` in one conditional update, so two clicks at
    once cannot both succeed.
    """

    class Purpose(models.TextChoices):
        VERIFY_EMAIL = "verify_email", "Verify an email address"
        RESET_PASSWORD = "reset_password", "Reset a password"  # pragma: allowlist secret
        RECOVER_SESSION = "recover_session", "Recover a session"
        CLAIM_BOOKING = "claim_booking", "Claim a booking made on Calendly"
        INVITE_BUILDER_MEMBER = "invite_builder_member", "Join a builder as a member"

    purpose = models.CharField(max_length=32, choices=Purpose.choices)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.CASCADE, related_name="one_time_links"
    )
    # The address the link was sent to, by blind index (a claim may have no user yet; a
    # verification link is for the address it was sent to, not a later one).
    email_index = models.CharField(max_length=64, blank=True, editable=False)
    # Where the link leads once spent: a path on this site (recovery) or a reference.
    target = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "purpose"], name="onetimelink_user_purpose")]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} link {self.pk}"


class ApiToken(models.Model):
    """A personal API token: shown once, stored as a keyed hash, scoped and expiring.

    The token reads ``<prefix>_<secret>``; ``prefix`` is kept in clear so that its owner
    and staff can tell tokens apart, ``digest`` is the keyed hash of the whole token.
    """

    class Scope(models.TextChoices):
        BOOKINGS_READ = "bookings:read", "Read bookings"
        BOOKINGS_WRITE = "bookings:write", "Change bookings"
        EVENT_TYPES_READ = "event_types:read", "Read sessions on offer"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=24, unique=True, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"API token {self.prefix}"


class SignIn(models.Model):
    """A successful sign-in, as shown to the person under "Recent sign-ins".

    Only the network (/24 for IPv4, /64 for IPv6) and a short description of the
    device are kept, never the full address or the user agent string.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="sign_ins")
    at = models.DateTimeField(default=timezone.now)
    network = models.CharField(max_length=64, blank=True)
    device = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["user", "-at"], name="signin_user_at")]

    def __str__(self) -> str:
        return f"Sign-in {self.pk}"
