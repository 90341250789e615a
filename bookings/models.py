"""Event types a builder sells, the bookings made for them, and the policy consents.

A booking's status changes only through :meth:`Booking.transition` (and the named
methods on top of it): illegal moves raise :class:`IllegalTransition`, a repeated
move is a no-op, and every real change is audited in the same transaction.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models, transaction
from django.utils import timezone

import audit
from accounts.models import Builder
from bookings.calendly import uuid_from_uri
from bookings.policy import DEFAULT_TIERS, RefundPolicy, validate_policy
from core.actors import Actor
from core.encryption import EncryptedCharField, EncryptedEmailField, EncryptedTextField
from payments.money import validate_amount


def _default_tiers() -> list[dict[str, int]]:
    return [dict(tier) for tier in DEFAULT_TIERS]


class EventType(models.Model):
    """A session a builder sells: a Calendly event type with our price and policy."""

    builder = models.ForeignKey(Builder, on_delete=models.PROTECT, related_name="event_types")
    calendly_event_type_uri = models.URLField(max_length=255, unique=True)
    scheduling_url = models.URLField(max_length=255)
    title = models.CharField(max_length=200)
    duration_minutes = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    # Integer minor units of ``currency`` (cents; yen; fils), as Stripe takes them.
    price_amount = models.PositiveBigIntegerField(validators=[MinValueValidator(1)])
    currency = models.CharField(
        max_length=3, validators=[RegexValidator(r"^[a-z]{3}$", "A lowercase ISO 4217 code.")]
    )
    refund_policy = models.JSONField(default=_default_tiers, validators=[validate_policy])
    # Raised whenever refund_policy changes: a consent names the version it agreed to.
    refund_policy_version = models.PositiveIntegerField(default=1)
    automatic_tax = models.BooleanField(default=False)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["builder", "title"]

    def __str__(self) -> str:
        return f"{self.builder}: {self.title}"

    def clean(self) -> None:
        super().clean()
        if self.price_amount and self.currency:
            try:
                validate_amount(self.price_amount, self.currency)
            except ValidationError as exc:
                raise ValidationError({"price_amount": exc.messages}) from None

    @property
    def policy(self) -> RefundPolicy:
        return RefundPolicy.from_json(self.refund_policy)

    def set_refund_policy(self, tiers: list[dict[str, int]], *, actor: Actor) -> bool:
        """Replace the policy (validated), raising its version; audited. No-op if equal."""
        policy = RefundPolicy.from_json(tiers)
        if policy == self.policy:
            return False
        with transaction.atomic():
            previous = self.refund_policy
            self.refund_policy = policy.to_json()
            self.refund_policy_version += 1
            self.save(update_fields=["refund_policy", "refund_policy_version"])
            audit.record(
                "bookings.event_type.policy_changed",
                category=audit.Category.TRANSACTION,
                actor=actor,
                target=self,
                data={
                    "from": previous,
                    "to": self.refund_policy,
                    "version": self.refund_policy_version,
                },
            )
        return True


class IllegalTransition(Exception):  # noqa: N818 (the name says what went wrong)
    def __init__(self, booking: Booking, to: str) -> None:
        super().__init__(f"booking {booking.pk} cannot go from {booking.status} to {to}")
        self.current = booking.status
        self.to = to


class BookingQuerySet(models.QuerySet["Booking"]):
    def for_invitee(self, uri_or_uuid: str) -> BookingQuerySet:
        """The booking of a Calendly invitee, named by any form of its URI or its UUID."""
        return self.filter(calendly_invitee_uuid=invitee_key(uri_or_uuid))


def invitee_key(uri_or_uuid: str) -> str:
    """What a booking is keyed by: the invitee's UUID in any of Calendly's URI forms."""
    return uuid_from_uri(uri_or_uuid, "invitees")


class Booking(models.Model):
    class Status(models.TextChoices):
        PENDING_PAYMENT = "pending_payment", "Awaiting payment"
        CONFIRMED = "confirmed", "Confirmed"
        COMPLETED = "completed", "Completed"
        NO_SHOW = "no_show", "No-show"
        EXPIRED = "expired", "Expired (not paid)"
        CANCELED = "canceled", "Canceled"
        RESCHEDULED = "rescheduled", "Rescheduled"
        DISPUTED = "disputed", "Disputed"

    # Where each status may go next. A dispute can follow any paid state, and a
    # dispute closed in our favour gives the booking back the status it had then
    # (``disputed_from``): that one only, whatever else this table lists.
    TRANSITIONS: dict[str, frozenset[str]] = {
        Status.PENDING_PAYMENT: frozenset({Status.CONFIRMED, Status.EXPIRED}),
        Status.CONFIRMED: frozenset(
            {
                Status.COMPLETED,
                Status.NO_SHOW,
                Status.CANCELED,
                Status.RESCHEDULED,
                Status.DISPUTED,
            }
        ),
        # Completion is assumed some time after the end (beat); a no-show the builder
        # marks later still counts.
        Status.COMPLETED: frozenset({Status.NO_SHOW, Status.DISPUTED}),
        Status.NO_SHOW: frozenset({Status.DISPUTED}),
        Status.CANCELED: frozenset({Status.DISPUTED}),
        Status.RESCHEDULED: frozenset(),
        Status.EXPIRED: frozenset(),
        Status.DISPUTED: frozenset(
            {Status.CONFIRMED, Status.COMPLETED, Status.NO_SHOW, Status.CANCELED}
        ),
    }

    # Null when no client could be linked (no valid booking intent): kept for staff.
    client = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="bookings",
    )
    builder = models.ForeignKey(Builder, on_delete=models.PROTECT, related_name="bookings")
    event_type = models.ForeignKey(EventType, on_delete=models.PROTECT, related_name="bookings")
    # Our opaque id, the only thing about a booking that Stripe is told (metadata).
    reference = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # The idempotency key of every path that records a booking: the invitee's UUID.
    # Calendly names one invitee by URIs on different hosts, with and without
    # /api/v2/, so the URI as received is kept for reference only.
    calendly_invitee_uuid = models.CharField(max_length=64, unique=True)
    calendly_invitee_uri = models.CharField(max_length=255)
    calendly_event_uri = models.CharField(max_length=255)
    start_at = models.DateTimeField()
    end_at = models.DateTimeField()
    invitee_time_zone = models.CharField(max_length=64, default="UTC")
    invitee_name = EncryptedCharField(max_length=200, null=True, blank=True)
    invitee_email = EncryptedEmailField(null=True, blank=True)
    answers = EncryptedTextField(null=True, blank=True)  # JSON: [{"question", "answer"}]
    # The price when booked, in minor units: what a payment must match.
    price_amount = models.PositiveBigIntegerField(default=0)
    currency = models.CharField(max_length=3, default="")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING_PAYMENT)
    status_changed_at = models.DateTimeField(default=timezone.now)
    # While disputed: the status it had before, which a dispute closed in our favour
    # gives back. Blank otherwise (and for bookings disputed before it was kept).
    disputed_from = models.CharField(
        "status before its dispute", max_length=20, choices=Status.choices, blank=True
    )
    rescheduled_to = models.OneToOneField(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="rescheduled_from",
    )
    needs_review = models.BooleanField(default=False)
    review_reason = models.CharField(max_length=200, blank=True)
    # Who asked us to cancel, and when: recorded before Calendly is told, so that
    # Calendly's invitee.canceled, if it is processed first, credits that person and
    # applies the policy at the time they asked.
    cancel_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # Staff cancelled it for the client, the provider being at fault: whichever of
    # their request and Calendly's invitee.canceled gets there first refunds in full.
    cancel_refund_full = models.BooleanField(default=False)
    # The builder called it off from Slotpay: a full refund, made at once as when the
    # builder cancels on Calendly (not the staff path, which four eyes may hold).
    cancel_by_builder = models.BooleanField(default=False)
    # Calendly's own pages for this invitee, as Calendly gave them when the booking was
    # recorded: the client's page links to them (a GET never asks Calendly).
    calendly_cancel_url = models.URLField(max_length=255, blank=True)
    calendly_reschedule_url = models.URLField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = BookingQuerySet.as_manager()

    class Meta:
        ordering = ["-start_at"]
        permissions = [
            ("cancel_for_client", "Can cancel a booking for the client with a full refund"),
            ("send_claim", "Can send a booking nobody claimed to an existing client"),
        ]
        indexes = [
            models.Index(fields=["client", "-start_at"], name="bookings_client_idx"),
            models.Index(fields=["builder", "-start_at"], name="bookings_builder_idx"),
            models.Index(fields=["status", "created_at"], name="bookings_status_idx"),
            # The back-office list's order (its default, then the pk for a total order).
            models.Index(fields=["-start_at", "-id"], name="bookings_start_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end_at__gt=models.F("start_at")), name="bookings_ends_after"
            )
        ]

    def __str__(self) -> str:
        return f"Booking {self.pk} ({self.status})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.calendly_invitee_uuid and self.calendly_invitee_uri:
            self.calendly_invitee_uuid = invitee_key(self.calendly_invitee_uri)
        super().save(*args, **kwargs)

    def transition(
        self,
        to: str,
        *,
        actor: Actor,
        reason: str = "",
        data: dict[str, Any] | None = None,
        fields: dict[str, Any] | None = None,
        dispute_closed: bool = False,
    ) -> bool:
        """Move to ``to``: True if it changed, False if already there (a repeat).

        The row is locked and re-read first, so two concurrent handlers (a webhook and
        the redirect back) cannot both apply a move. Raises IllegalTransition. Only
        ``dispute_closed`` (:meth:`undispute`) leaves ``disputed``: a cancellation or a
        no-show delivered again must not end a dispute.
        """
        if to not in self.Status.values:
            raise ValueError(f"unknown booking status {to!r}")
        with transaction.atomic():
            current = Booking.objects.select_for_update().get(pk=self.pk)
            self.status = current.status
            if current.status == to:
                return False
            if to not in self._allowed_from(current, dispute_closed=dispute_closed):
                raise IllegalTransition(self, to)
            if to == self.Status.DISPUTED:
                fields = {**(fields or {}), "disputed_from": current.status}
            elif current.status == self.Status.DISPUTED:
                fields = {**(fields or {}), "disputed_from": ""}
            for name, value in (fields or {}).items():
                setattr(self, name, value)
            self.status = to
            self.status_changed_at = timezone.now()
            self.save(update_fields=["status", "status_changed_at", *(fields or {})])
            audit.record(
                f"bookings.booking.{to}",
                category=audit.Category.TRANSACTION,
                actor=actor,
                target=self,
                data={"from": current.status, "to": to, "reason": reason, **(data or {})},
            )
        return True

    def _allowed_from(self, current: Booking, *, dispute_closed: bool) -> frozenset[str]:
        """Where ``current`` (the locked row) may go: a disputed booking only back to
        the status it was disputed from, and only once its dispute closed for us."""
        allowed = self.TRANSITIONS[current.status]
        if current.status == self.Status.DISPUTED:
            return allowed & {current.disputed_from} if dispute_closed else frozenset()
        return allowed

    def confirm(self, *, actor: Actor) -> bool:
        return self.transition(self.Status.CONFIRMED, actor=actor)

    def expire(self, *, actor: Actor, reason: str = "") -> bool:
        return self.transition(self.Status.EXPIRED, actor=actor, reason=reason)

    def cancel(self, *, actor: Actor, reason: str = "") -> bool:
        return self.transition(self.Status.CANCELED, actor=actor, reason=reason)

    def complete(self, *, actor: Actor) -> bool:
        return self.transition(self.Status.COMPLETED, actor=actor)

    def mark_no_show(self, *, actor: Actor) -> bool:
        return self.transition(self.Status.NO_SHOW, actor=actor)

    def dispute(self, *, actor: Actor, reason: str = "") -> bool:
        return self.transition(self.Status.DISPUTED, actor=actor, reason=reason)

    def undispute(
        self, *, actor: Actor, reason: str = "", data: dict[str, Any] | None = None
    ) -> bool:
        """Disputed → the status it had when disputed, its dispute closed in our favour;
        False when it is not disputed (given back already). IllegalTransition when that
        status is not known (disputed before it was kept)."""
        current = Booking.objects.get(pk=self.pk)
        if current.status != self.Status.DISPUTED:
            return False
        if not current.disputed_from:
            raise IllegalTransition(self, "its status before the dispute (not recorded)")
        return self.transition(
            current.disputed_from, actor=actor, reason=reason, data=data, dispute_closed=True
        )

    def reschedule(self, successor: Booking, *, actor: Actor) -> bool:
        """Confirmed → rescheduled, linked to the booking that replaces it."""
        if successor.pk == self.pk:
            raise ValueError("a booking cannot be rescheduled to itself")
        changed = self.transition(
            self.Status.RESCHEDULED,
            actor=actor,
            data={"successor": successor.pk},
            fields={"rescheduled_to": successor},
        )
        if not changed:
            self.refresh_from_db(fields=["rescheduled_to"])
            if self.rescheduled_to_id != successor.pk:
                raise IllegalTransition(self, f"rescheduled to booking {successor.pk}")
        return changed


class PolicyConsent(models.Model):
    """A client's explicit agreement to an event type's refund policy, before Checkout."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="policy_consents"
    )
    event_type = models.ForeignKey(EventType, on_delete=models.PROTECT, related_name="+")
    booking = models.ForeignKey(
        Booking, on_delete=models.SET_NULL, null=True, blank=True, related_name="consents"
    )
    policy_version = models.PositiveIntegerField()
    policy = models.JSONField()  # the tiers as shown, whatever the event type says later
    consented_at = models.DateTimeField(default=timezone.now)
    ip = models.GenericIPAddressField(null=True, blank=True)  # truncated (/24, /48)

    class Meta:
        ordering = ["-consented_at"]

    def __str__(self) -> str:
        return f"Consent {self.pk} to policy v{self.policy_version}"


class Drift(models.Model):
    """A disagreement between Stripe or Calendly and our records that reconciliation
    could not repair through the webhook inbox: a person has to look.

    One row per finding, keyed by what it names (``key``, e.g. the Checkout Session's
    id with the kind), so that a finding seen on every daily run stays one row whose
    ``last_seen_at`` moves on. A run that covers ``window_at`` (the time by which it
    selected the object: a session's or refund's creation, an appointment's start)
    and no longer finds it marks it resolved; found again, it opens again.
    """

    class Kind(models.TextChoices):
        PAID_NO_BOOKING = "paid_no_booking", "Paid with no booking"
        PAID_NOT_RECORDED = "paid_not_recorded", "Paid in Stripe, not recorded as paid"
        CONFIRMED_NO_PAYMENT = "confirmed_no_payment", "Confirmed with no payment"
        REFUNDED_BUT_ACTIVE = "refunded_but_active", "Refunded in Stripe, booking active"
        REFUND_NOT_RECORDED = "refund_not_recorded", "Refund in Stripe, not recorded"
        CANCELED_BUT_CHARGED = "canceled_but_charged", "Canceled in Calendly, still charged"
        AMOUNT_MISMATCH = "amount_mismatch", "Amount mismatch"

    kind = models.CharField(max_length=30, choices=Kind.choices)
    key = models.CharField(max_length=255, unique=True)
    booking = models.ForeignKey(
        Booking, on_delete=models.SET_NULL, null=True, blank=True, related_name="drift"
    )
    # Named, not imported: payments sits below bookings.
    payment = models.ForeignKey(
        "payments.Payment", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The provider's ids it names: {"checkout_session": "cs_...", "refund": "re_...", ...}.
    provider_ids = models.JSONField(default=dict, blank=True)
    # Minor units: what our records expect and what the provider holds.
    amount_expected = models.BigIntegerField(null=True, blank=True)
    amount_actual = models.BigIntegerField(null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    detail = models.CharField(max_length=300, blank=True)
    window_at = models.DateTimeField()
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen_at", "kind"]
        verbose_name = "reconciliation drift"
        verbose_name_plural = "reconciliation drift"
        indexes = [
            models.Index(fields=["resolved_at", "kind"], name="bookings_drift_open_idx"),
            models.Index(fields=["window_at"], name="bookings_drift_window_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.key})"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None
