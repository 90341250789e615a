"""The Calendly sandbox's state: hosts, event types, bookings, webhook subscriptions.

Shaped after Calendly's resources, not after our domain: the API views render these
rows the way Calendly would, and the pages change them the way an invitee or a host
would on calendly.com.
"""

from __future__ import annotations

import uuid as uuid_lib

from django.db import models
from django.db.models import F, Q
from django.utils.timezone import now


def new_uuid() -> str:
    return str(uuid_lib.uuid4())


class Organization(models.Model):
    uuid = models.CharField(max_length=64, unique=True, default=new_uuid, editable=False)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.name


class Host(models.Model):
    """A Calendly user: the person whose calendar is booked."""

    uuid = models.CharField(max_length=64, unique=True, default=new_uuid, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="hosts")
    name = models.CharField(max_length=200)
    email = models.EmailField()
    slug = models.SlugField(max_length=100, unique=True)
    timezone = models.CharField(max_length=64, default="Europe/Berlin")
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.slug


class EventType(models.Model):
    uuid = models.CharField(max_length=64, unique=True, default=new_uuid, editable=False)
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="event_types")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100)
    duration = models.PositiveIntegerField(default=30, help_text="minutes")
    active = models.BooleanField(default=True)
    redirect_url = models.URLField(
        max_length=500, blank=True, help_text="Where the invitee goes after booking."
    )
    question = models.CharField(max_length=300, blank=True, help_text="One custom question.")
    location = models.CharField(max_length=200, blank=True, default="Video call")
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["host", "slug"], name="calendly_event_type_slug")
        ]

    def __str__(self) -> str:
        return f"{self.host.slug}/{self.slug}"


class ScheduledEvent(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        CANCELED = "canceled", "Canceled"

    uuid = models.CharField(max_length=64, unique=True, default=new_uuid, editable=False)
    event_type = models.ForeignKey(EventType, on_delete=models.CASCADE, related_name="events")
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="events")
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    start_time = models.DateTimeField()
    end_time = models.DateTimeField()
    location = models.CharField(max_length=200, blank=True)
    canceled_by = models.CharField(max_length=200, blank=True)
    cancel_reason = models.CharField(max_length=500, blank=True)
    canceler_type = models.CharField(max_length=16, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["start_time", "id"]
        constraints = [
            # The last line against a double booking: two concurrent submits for the
            # same slot cannot both commit.
            models.UniqueConstraint(
                fields=["host", "start_time"],
                condition=Q(status="active"),
                name="calendly_one_active_event_per_slot",
            ),
            models.CheckConstraint(
                condition=Q(end_time__gt=F("start_time")), name="calendly_event_ends_after_start"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} at {self.start_time:%Y-%m-%d %H:%M}"


class Invitee(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        CANCELED = "canceled", "Canceled"

    uuid = models.CharField(max_length=64, unique=True, default=new_uuid, editable=False)
    scheduled_event = models.ForeignKey(
        ScheduledEvent, on_delete=models.CASCADE, related_name="invitees"
    )
    name = models.CharField(max_length=200)
    # NULL, as Calendly sends them, when the page asks for one name field.
    first_name = models.CharField(max_length=100, null=True, blank=True)
    last_name = models.CharField(max_length=100, null=True, blank=True)
    email = models.EmailField()
    timezone = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    questions_and_answers = models.JSONField(default=list, blank=True)
    utm_source = models.CharField(max_length=500, blank=True)
    utm_medium = models.CharField(max_length=500, blank=True)
    utm_campaign = models.CharField(max_length=500, blank=True)
    utm_content = models.CharField(max_length=1000, blank=True)
    utm_term = models.CharField(max_length=500, blank=True)
    rescheduled = models.BooleanField(default=False)
    old_invitee = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replaced_by"
    )
    canceled_by = models.CharField(max_length=200, blank=True)
    cancel_reason = models.CharField(max_length=500, blank=True)
    canceler_type = models.CharField(max_length=16, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    no_show_uuid = models.CharField(max_length=64, blank=True)
    no_show_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"invitee {self.uuid}"

    @property
    def new_invitee(self) -> Invitee | None:
        try:
            return self.replaced_by
        except Invitee.DoesNotExist:
            return None

    @property
    def tracking(self) -> dict[str, str | None]:
        return {
            "utm_campaign": self.utm_campaign or None,
            "utm_source": self.utm_source or None,
            "utm_medium": self.utm_medium or None,
            "utm_content": self.utm_content or None,
            "utm_term": self.utm_term or None,
            "salesforce_uuid": None,
        }


class WebhookSubscription(models.Model):
    class Scope(models.TextChoices):
        ORGANIZATION = "organization", "Organization"
        USER = "user", "User"

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        DISABLED = "disabled", "Disabled"

    uuid = models.CharField(max_length=64, unique=True, default=new_uuid, editable=False)
    callback_url = models.URLField(max_length=500)
    events = models.JSONField(default=list)
    scope = models.CharField(max_length=16, choices=Scope.choices)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="subscriptions"
    )
    host = models.ForeignKey(
        Host, null=True, blank=True, on_delete=models.CASCADE, related_name="subscriptions"
    )
    # A sandbox test key, shown on the dashboard so deliveries can be checked by hand.
    signing_key = models.CharField(max_length=200)
    # Disabled, as Calendly does, by the operator on the dashboard or after
    # DISABLE_AFTER_FAILED_DELIVERIES deliveries in a row given up (services.py);
    # never enabled again: the owner must recreate it.
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    # When its deliveries started failing (Calendly's field); empty once one succeeds.
    retry_started_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.scope} subscription → {self.callback_url}"

    def wants(self, event: str, host: Host) -> bool:
        if self.state != self.State.ACTIVE or event not in self.events:
            return False
        if self.organization_id != host.organization_id:
            return False
        return self.scope == self.Scope.ORGANIZATION or self.host_id == host.pk


class SubscriptionDelivery(models.Model):
    """Which subscription a webhook delivery (sandbox.Delivery) was sent for: its
    outcomes decide when the subscription is disabled."""

    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="sent"
    )
    delivery = models.OneToOneField(
        "sandbox.Delivery", on_delete=models.CASCADE, related_name="calendly_subscription"
    )

    class Meta:
        ordering = ["-delivery_id"]

    def __str__(self) -> str:
        return f"delivery {self.delivery_id} for subscription {self.subscription_id}"


class DataDeletionRequest(models.Model):
    """``POST /data_compliance/deletion/invitees``: kept without the emails it named."""

    uuid = models.CharField(max_length=64, unique=True, default=new_uuid, editable=False)
    email_count = models.PositiveIntegerField()
    invitees_erased = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"deletion of {self.email_count} invitee email(s)"


class Fault(models.Model):
    """A knob: answer the next ``remaining`` API requests with ``status`` (429 with
    ``Retry-After``, or a 5xx), as a busy or failing Calendly would."""

    status = models.PositiveIntegerField(default=429)
    remaining = models.PositiveIntegerField(default=0)
    retry_after = models.PositiveIntegerField(default=1, help_text="seconds")
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"next {self.remaining} request(s) → {self.status}"
