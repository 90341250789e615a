"""The webhook inbox in the back-office: read-only for everyone; "Replay" for failed and
dead events, for staff holding ``webhooks.replay_webhookevent`` who just stepped up.

The payload and headers are shown masked: emails, card numbers and secrets by
``core.masking.scrub``, and the fields that name or locate a person (names, phone
numbers, addresses, answers) replaced whole, since scrub cannot recognise a name.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet, Sum
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from core.admin import ReadOnlyAdmin
from core.masking import MASK, scrub, scrub_text
from core.stepup import StepUpAdminMixin
from webhooks import services
from webhooks.models import WebhookEvent, WebhookRejection

Status = WebhookEvent.Status
REPLAYABLE = (Status.FAILED, Status.DEAD)
REPLAY_ACTION = "replay_selected"
# Keys whose values name, reach or locate a person in Stripe's and Calendly's events.
_PERSONAL_KEYS = re.compile(
    r"(?i)^(name|first_name|last_name|full_name|user_name|individual_name|business_name|"
    r"phone|text_reminder_number|address|shipping|shipping_details|questions_and_answers|"
    r"answer|meeting_notes_plain|meeting_notes_html)$"
)


def masked(value: Any, *, key: str = "") -> Any:
    """``value`` (decoded JSON) with personal fields replaced and the rest scrubbed."""
    if key and _PERSONAL_KEYS.match(key) and value not in (None, "", [], {}):
        return MASK
    if isinstance(value, dict):
        return {scrub_text(str(name)): masked(item, key=str(name)) for name, item in value.items()}
    if isinstance(value, list):
        return [masked(item) for item in value]
    return scrub(value, key=key or None)


def _pretty(value: Any) -> SafeString:
    return format_html(
        "<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    )


def last_day_counts(*, now: Any = None) -> dict[str, Any]:
    """Events received per status and deliveries refused per provider and reason, over
    the last 24 hours (refusals are counted per hour: the hour 24 h ago is included)."""
    since = (now or timezone.now()) - timedelta(hours=24)
    statuses = dict(Status.choices)
    per_status = (
        WebhookEvent.objects.filter(received_at__gte=since)
        .values_list("status")
        .annotate(events=Count("id"))
        .order_by("status")
    )
    rejections = (
        WebhookRejection.objects.filter(hour__gte=since.replace(minute=0, second=0, microsecond=0))
        .values_list("provider", "reason")
        .annotate(deliveries=Sum("count"))
        .order_by("-deliveries", "provider", "reason")
    )
    return {
        "since": since,
        "per_status": [(statuses.get(status, status), count) for status, count in per_status],
        "rejections": list(rejections),
    }


def _staff_member(request: HttpRequest) -> AbstractBaseUser:
    if not isinstance(request.user, AbstractBaseUser):  # the admin lets no one else in
        raise PermissionDenied
    return request.user


@admin.register(WebhookEvent)
class WebhookEventAdmin(StepUpAdminMixin, ReadOnlyAdmin):
    list_display = (
        "received_at",
        "provider",
        "event_type",
        "status",
        "source",
        "attempts",
        "next_attempt_at",
        "processed_at",
    )
    list_filter = ("provider", "status", "source", "event_type", "received_at")
    search_fields = ("=event_id", "=request_id")
    date_hierarchy = "received_at"
    show_full_result_count = False
    fields = (
        "provider",
        "event_id",
        "event_type",
        "status",
        "attempts",
        "received_at",
        "next_attempt_at",
        "enqueued_at",
        "claimed_at",
        "processed_at",
        "last_error",
        "payload_purged_at",
        "request_id",
        "masked_headers",
        "masked_payload",
    )
    readonly_fields = fields
    actions = [REPLAY_ACTION]
    step_up_actions = frozenset({REPLAY_ACTION})

    @admin.display(description="headers (masked)")
    def masked_headers(self, event: WebhookEvent) -> SafeString:
        return _pretty(masked(event.headers))

    @admin.display(description="payload (masked)")
    def masked_payload(self, event: WebhookEvent) -> SafeString | str:
        if event.payload is None:
            return "purged" if event.payload_purged_at else "-"
        try:
            decoded = json.loads(event.payload)
        except ValueError:
            return format_html("<pre>{}</pre>", scrub_text(event.payload))
        return _pretty(masked(decoded))

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        # A hand-made POST of the action without the permission is refused outright,
        # before the step-up detour.
        if (
            request.method == "POST"
            and request.POST.get("action") == REPLAY_ACTION
            and not self.has_replay_permission(request)
        ):
            raise PermissionDenied
        context = {**(extra_context or {}), "last_day": last_day_counts()}
        return super().changelist_view(request, context)

    @admin.action(description="Replay the selected failed or dead events", permissions=["replay"])
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        results = services.events_replay(
            events=queryset,
            actor=_staff_member(request),
            reason="replayed from the admin inbox",
            statuses=REPLAYABLE,
        )
        for event, outcome in results:
            level = messages.WARNING if outcome.startswith("skipped") else messages.INFO
            self.message_user(request, f"{event}: {outcome}", level)

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("webhooks.replay_webhookevent")


@admin.register(WebhookRejection)
class WebhookRejectionAdmin(ReadOnlyAdmin):
    """Refused deliveries per reason and hour: a spike of signature failures shows here."""

    list_display = ("hour", "provider", "reason", "count", "last_seen_at")
    list_filter = ("provider", "reason")
    date_hierarchy = "hour"
