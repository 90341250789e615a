"""The webhook inbox in the back-office: read-only, plus "replay" for dead letters."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from core.admin import ReadOnlyAdmin
from webhooks import services
from webhooks.models import WebhookEvent, WebhookRejection


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = (
        "received_at",
        "provider",
        "event_type",
        "status",
        "attempts",
        "next_attempt_at",
        "processed_at",
    )
    list_filter = ("provider", "status", "event_type")
    search_fields = ("=event_id", "=request_id")
    date_hierarchy = "received_at"
    # The payload holds personal data: it stays encrypted and out of the page.
    exclude = ("payload",)
    readonly_fields = (
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
        "headers",
        "request_id",
    )
    actions = ["replay"]

    @admin.action(description="Replay the selected events", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        results = services.events_replay(
            events=queryset,
            actor=request.user,  # type: ignore[arg-type]  # staff only: never anonymous
            reason="replayed from the admin inbox",
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
