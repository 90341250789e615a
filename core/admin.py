"""Admin bases every app uses, and the list of alerts."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.http import HttpRequest

from core.models import Alert


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]  # generic in the stubs only
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


# Lookups a list's URL may not use: a pattern the database must compile (a broken one
# is a database error, a 500) and that staff never need.
REFUSED_LOOKUPS = frozenset({"regex", "iregex"})


def harden(site: admin.AdminSite) -> None:
    """Give every list registered on ``site``, ours and third-party ones (axes'), the
    same answers to hand-edited URLs: an impossible date or a NUL character is the
    admin's "invalid filter" notice, a regular expression is refused (400), never a
    500."""
    for model_admin in site._registry.values():
        _guard_changelist(model_admin)


def _guard_changelist(model_admin: Any) -> None:
    get_changelist_instance = model_admin.get_changelist_instance
    lookup_allowed = model_admin.lookup_allowed

    def guarded_changelist(request: HttpRequest) -> Any:
        # PostgreSQL text cannot hold NUL: a filter or search with one is invalid.
        if any("\x00" in value for values in request.GET.lists() for value in values[1]):
            raise IncorrectLookupParameters("a NUL character in the list's URL")
        try:
            return get_changelist_instance(request)
        except (OverflowError, ValueError) as exc:
            raise IncorrectLookupParameters(exc) from exc

    def guarded_lookup(lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        if REFUSED_LOOKUPS & set(lookup.split("__")):
            return False
        return bool(lookup_allowed(lookup, value, request))

    model_admin.get_changelist_instance = guarded_changelist
    model_admin.lookup_allowed = guarded_lookup


class OpenFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("open", "Open"), ("cleared", "Cleared")]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        if self.value() == "open":
            return queryset.filter(cleared_at__isnull=True)
        if self.value() == "cleared":
            return queryset.filter(cleared_at__isnull=False)
        return queryset


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    """Incidents the watchdogs and the periodic jobs raised (core/alerts.py), open ones
    first. Read-only: an alert clears when its cause is gone, not when someone says
    so. Superusers and the Auditor group (``core.view_alert``) see it."""

    list_display = ("key", "summary", "opened_at", "last_seen_at", "cleared_at", "times_seen")
    list_filter = (OpenFilter, "opened_at")
    search_fields = ("key",)
    date_hierarchy = "opened_at"
    fields = ("key", "summary", "group", "opened_at", "last_seen_at", "cleared_at", "times_seen")
