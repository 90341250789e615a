from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
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
