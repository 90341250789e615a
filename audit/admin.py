from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditEntry, SecurityEventCount
from core.admin import ReadOnlyAdmin


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):  # type: ignore[type-arg]  # generic in the stubs only
    """Read-only: the trail is written by audit.record() and nothing else."""

    list_display = (
        "sequence",
        "created_at",
        "category",
        "action",
        "actor_type",
        "actor_id",
        "target_type",
        "target_id",
    )
    list_filter = ("category", "actor_type")
    search_fields = ("=action", "=target_id", "=request_id", "=actor_id")
    date_hierarchy = "created_at"
    exclude = ("personal_data",)
    show_full_result_count = False

    def get_readonly_fields(self, request: HttpRequest, obj: AuditEntry | None = None) -> list[str]:
        return [field.name for field in self.model._meta.fields if field.name != "personal_data"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False


@admin.register(SecurityEventCount)
class SecurityEventCountAdmin(ReadOnlyAdmin):
    """Failed sign-ins and lockouts per hour, all of them: the audit log keeps the
    first SECURITY_EVENT_AUDIT_LIMIT of each hour only."""

    list_display = ("hour", "action", "count", "last_seen_at")
    list_filter = ("action",)
    date_hierarchy = "hour"
