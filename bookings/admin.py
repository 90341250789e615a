"""Event types (what builders sell) in the back-office; bookings read-only.

Refunds and data-subject requests from the back-office are a later issue: they will
go through ``payments.services.refund_request`` like everything else.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models
from django.http import HttpRequest

from bookings.models import Booking, EventType
from core.admin import ReadOnlyAdmin
from payments.money import format_money


@admin.register(EventType)
class EventTypeAdmin(admin.ModelAdmin):
    list_display = (
        "title",
        "builder",
        "price",
        "duration_minutes",
        "refund_policy_version",
        "active",
    )
    list_filter = ("active", "builder", "currency")
    readonly_fields = ("refund_policy_version", "created_at")

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if isinstance(db_field, models.URLField):
            kwargs["assume_scheme"] = "https"  # Django 6's default, and Calendly's scheme
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    fields = (
        "builder",
        "title",
        "calendly_event_type_uri",
        "scheduling_url",
        "duration_minutes",
        "price_amount",
        "currency",
        "automatic_tax",
        "refund_policy",
        "refund_policy_version",
        "active",
        "created_at",
    )

    @admin.display(description="price")
    def price(self, obj: EventType) -> str:
        return format_money(obj.price_amount, obj.currency)

    def save_model(self, request: HttpRequest, obj: EventType, form: Any, change: bool) -> None:
        """A policy change raises the version and is audited (set_refund_policy)."""
        tiers = obj.refund_policy
        if change and "refund_policy" in form.changed_data:
            obj.refund_policy = EventType.objects.get(pk=obj.pk).refund_policy
            super().save_model(request, obj, form, change)
            # Staff, never AnonymousUser: the admin signs people in (the stubs cannot know).
            obj.set_refund_policy(tiers, actor=request.user)  # type: ignore[arg-type]
            return
        super().save_model(request, obj, form, change)


@admin.register(Booking)
class BookingAdmin(ReadOnlyAdmin):
    list_display = ("reference", "builder", "event_type", "start_at", "status", "needs_review")
    list_filter = ("status", "needs_review", "builder")
    search_fields = ("=reference", "=calendly_invitee_uuid")
    date_hierarchy = "start_at"
    exclude = ("answers",)
