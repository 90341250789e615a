"""The audit trail in the back-office: read-only for everyone, superusers included.

Staff can filter the entries, verify the chain (a button on the list: a POST, audited)
and download the signed checkpoints; nobody can add, change or delete anything, and
the personal-data part of an entry never reaches a page. The list and the verify page
say how far integration lags (entries queued, the oldest one's age): a queued entry
is listed with no sequence or position until the sequencer places it.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_http_methods, require_POST

from audit.checkpoints import checkpoint_check, checkpoints_export, latest_checkpoint, note
from audit.models import AuditCheckpoint, AuditEntry, SecurityEventCount
from audit.sequencer import IntegrationDelay, integration_delay
from audit.services import STREAMS, chain_verify
from core.admin import ReadOnlyAdmin

# The encrypted part and anything derived from it: no lookup in a list's URL either
# (``?personal_data__isnull=0`` would tell whose entries hold some).
HIDDEN_PREFIX = "personal_data"


def _staff_member(request: HttpRequest) -> models.Model:
    """The signed-in person acting (the admin's views let no one else in)."""
    if not isinstance(request.user, models.Model):
        raise PermissionDenied
    return request.user


def _integration(delay: IntegrationDelay) -> str:
    return f"Integration: {delay.describe()}."


class TextFilter(admin.SimpleListFilter):
    """A list filter with a text box: the value typed in, matched by ``lookup``."""

    template = "admin/audit/text_filter.html"
    lookup = ""

    def __init__(self, request: HttpRequest, params: Any, model: Any, model_admin: Any) -> None:
        super().__init__(request, params, model, model_admin)
        # The list's other parameters, kept as hidden fields so that typing here does
        # not drop the other filters.
        self.kept = [
            (name, value)
            for name, value in request.GET.items()
            if name not in (self.parameter_name, "p")
        ]

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return []

    def has_output(self) -> bool:
        return True

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = (self.value() or "").strip()
        return queryset.filter(**{self.lookup: value}) if value else queryset


class ActionPrefixFilter(TextFilter):
    title = "action (name or prefix)"
    parameter_name = "action_prefix"
    lookup = "action__startswith"


class ActorIdFilter(TextFilter):
    title = "actor id"
    parameter_name = "actor"
    lookup = "actor_id"


class TargetIdFilter(TextFilter):
    title = "target id"
    parameter_name = "target"
    lookup = "target_id"


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """Read-only: the trail is written by audit.record() and nothing else."""

    list_display = (
        "sequence",
        "stream",
        "position",
        "created_at",
        "category",
        "action",
        "actor_type",
        "actor_id",
        "target_type",
        "target_id",
    )
    list_filter = (
        "stream",
        "category",
        "actor_type",
        ActionPrefixFilter,
        ActorIdFilter,
        "target_type",
        TargetIdFilter,
    )
    # "payments." finds every payments action; ids match exactly.
    search_fields = ("^action", "=target_id", "=request_id", "=actor_id")
    search_help_text = "An action or its prefix (payments.refund), or an exact id."
    date_hierarchy = "created_at"
    exclude = ("personal_data",)
    show_full_result_count = False
    actions = None

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in self.model._meta.fields if field.name != "personal_data"]

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        if lookup.startswith(HIDDEN_PREFIX) and not lookup.startswith("personal_data_redacted"):
            return False
        return super().lookup_allowed(lookup, value, request)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "GET" and self.has_view_permission(request):
            # Only for those who may see the list (a refusal's page must not say it).
            messages.info(request, _integration(integration_delay()))
        return super().changelist_view(request, extra_context)

    def get_urls(self) -> list[URLPattern]:
        verify = self.admin_site.admin_view(require_http_methods(["GET", "POST"])(self.verify_view))
        return [
            path("verify/", verify, name="audit_auditentry_verify"),
            *super().get_urls(),
        ]

    def verify_view(self, request: HttpRequest) -> HttpResponse:
        """GET: what the button does; POST: verify every stream in full (audited),
        check each stream's latest checkpoint against it, and show the outcomes."""
        if not request.user.has_perm("audit.view_auditentry"):
            raise PermissionDenied
        latest = [found for stream in STREAMS if (found := latest_checkpoint(stream))]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Verify the audit chain",
            "checkpoints": latest,
        }
        delay = integration_delay()
        if request.method == "POST":
            report = chain_verify(actor=_staff_member(request))
            context["report"] = report
            delay = report.delay or delay
            context["checkpoint_results"] = [
                (checkpoint, checkpoint_check(checkpoint)) for checkpoint in latest
            ]
        messages.info(request, _integration(delay))
        return TemplateResponse(request, "admin/audit/auditentry/verify.html", context)


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyAdmin):
    """Signed checkpoints, one per closed segment of a stream, read-only and never
    deleted (a purge keeps them: they anchor what survives); "Export checkpoints"
    downloads them all (JSONL) to keep somewhere the database's owner cannot reach."""

    list_display = (
        "created_at",
        "stream",
        "first_position",
        "position",
        "entry_count",
        "short_hash",
        "key_id",
    )
    list_filter = ("stream",)
    date_hierarchy = "created_at"
    fields = (
        "created_at",
        "stream",
        "first_position",
        "position",
        "entry_hash",
        "entry_count",
        "previous_hash",
        "key_id",
        "public_key",
        "signed_note",
    )
    readonly_fields = fields
    actions = None

    @admin.display(description="entry hash")
    def short_hash(self, checkpoint: AuditCheckpoint) -> str:
        return f"{checkpoint.entry_hash[:16]}…"

    @admin.display(description="signed note")
    def signed_note(self, checkpoint: AuditCheckpoint) -> str:
        return format_html("<pre>{}</pre>", note(checkpoint))

    def get_urls(self) -> list[URLPattern]:
        export = self.admin_site.admin_view(require_POST(self.export_view))
        return [
            path("export/", export, name="audit_auditcheckpoint_export"),
            *super().get_urls(),
        ]

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """POST only: the export is audited, and a GET changes nothing."""
        if not request.user.has_perm("audit.view_auditcheckpoint"):
            raise PermissionDenied
        text = checkpoints_export(actor=_staff_member(request))
        response = HttpResponse(text, content_type="text/plain; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="audit-checkpoints-{stamp}.jsonl"'
        return response


@admin.register(SecurityEventCount)
class SecurityEventCountAdmin(ReadOnlyAdmin):
    """Failed sign-ins and lockouts per hour, all of them: the audit log keeps the
    first SECURITY_EVENT_AUDIT_LIMIT of each hour only. Kept 90 days
    (audit.retention)."""

    list_display = ("hour", "action", "count", "last_seen_at")
    list_filter = ("action",)
    date_hierarchy = "hour"
