"""Data-subject requests in the back-office (Privacy): the queue by due date, and on
each request what its kind needs: the access export and its signed download links,
the rectification form, the erasure (stepped up) and its steps."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

import audit
from accounts import dsr, reveal
from accounts.admin import ExactEmailSearchMixin
from accounts.models import DataSubjectRequest, User, validate_time_zone
from core.encryption import blind_indexes
from core.stepup import stepped_up_or_redirect
from core.timezones import zoned


class StateFilter(admin.SimpleListFilter):
    """Open requests by default: the queue."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("open", "Open"), ("overdue", "Overdue"), ("closed", "Closed"), ("all", "All")]

    def choices(self, changelist: Any) -> Any:
        for choice in super().choices(changelist):
            if choice["query_string"].endswith("?") or "state" not in choice["query_string"]:
                continue  # "All" is one of ours: without a choice, the queue shows
            if self.value() is None and "state=open" in choice["query_string"]:
                choice["selected"] = True
            yield choice

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value() or "open"
        opened = queryset.filter(status__in=DataSubjectRequest.OPEN_STATUSES)
        if value == "open":
            return opened
        if value == "overdue":
            return opened.filter(due_at__lt=timezone.now())
        if value == "closed":
            return queryset.exclude(status__in=DataSubjectRequest.OPEN_STATUSES)
        return queryset


class FileRequestForm(forms.ModelForm):
    """A request as received (email, letter, the client's page): the subject is found
    by their exact email address, through the blind index."""

    subject_email = forms.EmailField(
        label="Subject's email address", help_text="Exact address of their account."
    )

    class Meta:
        model = DataSubjectRequest
        fields = ("kind", "notes")

    def clean_subject_email(self) -> User:
        email = self.cleaned_data["subject_email"]
        subject = User.objects.filter(email_index__in=blind_indexes(email)).first()
        if subject is None:
            raise forms.ValidationError("No account has this email address.")
        return subject


class RectifyForm(forms.Form):
    """A client's name, email and time zone as corrected, each checked here: a wrong
    value is a field error, never an error page (a staff account is not corrected
    here at all)."""

    name = forms.CharField(max_length=200, required=False)
    email = forms.EmailField(max_length=254)
    time_zone = forms.CharField(
        max_length=64, required=False, help_text="IANA time zone, e.g. Europe/Paris."
    )
    reason = forms.CharField(
        min_length=5, max_length=500, widget=forms.Textarea(attrs={"rows": 2, "cols": 60})
    )

    def __init__(self, *args: Any, subject: User, **kwargs: Any) -> None:
        self.subject = subject
        super().__init__(*args, **kwargs)

    def clean_time_zone(self) -> str:
        value = self.cleaned_data["time_zone"].strip()
        if value:
            try:
                validate_time_zone(value)
            except forms.ValidationError:
                raise forms.ValidationError(
                    "Not an IANA time zone (for example Europe/Paris)."
                ) from None
        return value

    def clean_email(self) -> str:
        value = self.cleaned_data["email"].strip()
        if User.objects.email_taken(value, other_than=self.subject.pk):
            raise forms.ValidationError("Another account has this email address.")
        return value

    def errors_text(self) -> str:
        """Each field's errors after its label: "Time zone: Not an IANA time zone"."""
        parts = []
        for name, errors in self.errors.get_json_data().items():
            text = " ".join(error["message"] for error in errors)
            if name in self.fields:
                label = self.fields[name].label or name.replace("_", " ").capitalize()
                text = f"{label}: {text}"
            parts.append(text)
        return " ".join(parts)


@admin.register(DataSubjectRequest)
class DataSubjectRequestAdmin(ExactEmailSearchMixin, admin.ModelAdmin):
    list_display = ("id", "kind", "status", "subject_ref", "received", "due_date", "due")
    list_filter = (StateFilter, "kind", "status")
    ordering = ("due_at", "id")
    search_fields = ("id",)
    # The subject's email, through the blind index (accounts.admin's search).
    email_index_lookup = "subject__email_index"
    search_help_text = "The subject's exact email address, or the request's id."
    change_form_template = "accounts/dsr/change_form.html"
    # Received and due dates are facts of the request (due: received + 30 days,
    # Art. 12(3)); only who handles it and the notes are edited here.
    readonly_fields = (
        "subject_ref",
        "kind",
        "status",
        "received",
        "filed_by_subject",
        "due_date",
        "hold_reason",
        "export_prepared",
        "completed",
    )
    fields = (*readonly_fields[:6], "handler", "notes", *readonly_fields[6:])
    raw_id_fields = ("handler",)

    list_select_related = ("subject",)

    @admin.display(description="Subject")
    def subject_ref(self, obj: DataSubjectRequest) -> str:
        return f"account {obj.subject_id} ({reveal.mask('email', obj.subject.email)})"

    # Every time says its zone: the one the back-office shows this staff member.
    @admin.display(description="Received", ordering="received_at")
    def received(self, obj: DataSubjectRequest) -> str:
        return zoned(obj.received_at)

    @admin.display(description="Due date", ordering="due_at")
    def due_date(self, obj: DataSubjectRequest) -> str:
        return zoned(obj.due_at)

    @admin.display(description="Export prepared")
    def export_prepared(self, obj: DataSubjectRequest) -> str:
        return zoned(obj.export_prepared_at)

    @admin.display(description="Completed")
    def completed(self, obj: DataSubjectRequest) -> str:
        return zoned(obj.completed_at)

    @admin.display(description="Due", ordering="due_at")
    def due(self, obj: DataSubjectRequest) -> str:
        if not obj.is_open:
            return "closed"
        now = timezone.now()
        if obj.is_overdue:
            return f"OVERDUE by {(now - obj.due_at).days} day(s)"
        return f"in {(obj.due_at - now).days} day(s)"

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = FileRequestForm
            kwargs["fields"] = ("subject_email", "kind", "notes")
        return super().get_form(request, obj, change, **kwargs)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "handler":
            kwargs["queryset"] = dsr.eligible_handlers()
            kwargs["help_text"] = "The id of an active Privacy staff member or a superuser."
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("subject_email", "kind", "notes") if obj is None else self.fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if obj is None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            if "handler" in form.changed_data:
                audit.record(
                    "accounts.dsr.handler_changed",
                    category=audit.Category.DATA,
                    actor=request.user,
                    target=obj,
                    data={"handler": obj.handler_id},
                )
            return
        try:
            filed = dsr.dsr_file(
                subject=form.cleaned_data["subject_email"],
                kind=form.cleaned_data["kind"],
                notes=form.cleaned_data.get("notes") or "",
                handler=request.user,  # type: ignore[arg-type]
                actor=request.user,  # type: ignore[arg-type]
            )
        except dsr.DsrRefused as exc:
            raise PermissionDenied(str(exc)) from None
        obj.pk = filed.pk

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a request is a record: closed or rejected, never deleted

    # --- The request's own pages ---

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/export/", view(self.export_prepare_view), name="accounts_dsr_export"),
            path(
                "export/<str:token>/",
                view(self.export_download_view),
                name="accounts_dsr_download",
            ),
            path("<int:pk>/rectify/", view(self.rectify_view), name="accounts_dsr_rectify"),
            path("<int:pk>/erase/", view(self.erase_view), name="accounts_dsr_erase"),
            path("<int:pk>/close/", view(self.close_view), name="accounts_dsr_close"),
            *super().get_urls(),
        ]

    def _request(self, request: HttpRequest, pk: int, *, change: bool = True) -> DataSubjectRequest:
        allowed = (
            self.has_change_permission(request) if change else self.has_view_permission(request)
        )
        if not allowed:
            raise PermissionDenied
        return get_object_or_404(DataSubjectRequest, pk=pk)

    def _back(self, pk: int) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:accounts_datasubjectrequest_change", args=[pk]))

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        obj = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if obj is not None and self.has_view_permission(request, obj):
            context.update(self._panels(request, obj))
        return super().change_view(request, object_id, form_url, context)

    def _panels(self, request: HttpRequest, obj: DataSubjectRequest) -> dict[str, Any]:
        panels: dict[str, Any] = {
            "dsr": obj,
            "may_change": self.has_change_permission(request, obj),
            "may_erase": request.user.has_perm("accounts.carry_out_erasure"),
            "steps": list(obj.steps.all()),
        }
        if obj.kind == DataSubjectRequest.Kind.ACCESS and obj.export:
            panels["downloads"] = [
                (
                    fmt.upper(),
                    reverse(
                        "admin:accounts_dsr_download",
                        args=[dsr.export_link_token(request=obj, actor=request.user, fmt=fmt)],  # type: ignore[arg-type]
                    ),
                )
                for fmt in dsr.EXPORT_FORMATS
            ]
        if obj.kind == DataSubjectRequest.Kind.RECTIFICATION and obj.is_open:
            subject = obj.subject
            panels["rectify_form"] = RectifyForm(
                subject=subject,
                initial={
                    "name": subject.name,
                    "email": subject.email,
                    "time_zone": subject.time_zone,
                },
            )
            reveal.record_access(
                request=request,
                subject=subject,
                fields=["name", "email", "time_zone"],
                reason=f"rectification request {obj.pk}",
                via="admin.dsr_rectify",
            )
        if obj.kind == DataSubjectRequest.Kind.ERASURE and obj.is_open:
            panels["holds"] = dsr.erasure_holds(request=obj)
        return panels

    @staticmethod
    def _refused(request: HttpRequest, exc: Exception) -> None:
        messages.error(request, str(exc))

    def export_prepare_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        obj = self._request(request, pk)
        if request.method != "POST":
            return self._back(pk)
        try:
            version = dsr.dsr_export_prepare(request=obj, actor=request.user)  # type: ignore[arg-type]
        except dsr.DsrRefused as exc:
            self._refused(request, exc)
        else:
            messages.success(request, f"Export version {version} is ready to download.")
        return self._back(pk)

    def export_download_view(self, request: HttpRequest, token: str) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            obj, fmt = dsr.export_for_token(token=token, user=request.user)  # type: ignore[arg-type]
        except dsr.ExportLinkInvalid as exc:
            return TemplateResponse(
                request,
                "accounts/dsr/link_refused.html",
                {
                    **self.admin_site.each_context(request),
                    "message": str(exc),
                    "title": "Download refused",
                },
                status=403,
            )
        exported = dsr.dsr_export_download(request=obj, fmt=fmt, actor=request.user)  # type: ignore[arg-type]
        response = HttpResponse(exported.content, content_type=exported.content_type)
        response["Content-Disposition"] = f'attachment; filename="{exported.filename}"'
        response["Cache-Control"] = "no-store"
        return response

    def rectify_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        obj = self._request(request, pk)
        if request.method != "POST":
            return self._back(pk)
        form = RectifyForm(request.POST, subject=obj.subject)
        if not form.is_valid():
            messages.error(request, f"Not corrected. {form.errors_text()}")
            return self._back(pk)
        data = form.cleaned_data
        try:
            changed = dsr.subject_rectify(
                request=obj,
                actor=request.user,  # type: ignore[arg-type]
                changes={name: data[name] for name in dsr.RECTIFIABLE},
                reason=data["reason"],
            )
        except dsr.DsrRefused as exc:
            self._refused(request, exc)
        else:
            messages.success(request, f"Corrected: {', '.join(changed) or 'nothing changed'}.")
        return self._back(pk)

    def erase_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        obj = self._request(request, pk)
        if not request.user.has_perm("accounts.carry_out_erasure"):
            raise PermissionDenied
        if request.method != "POST":
            return self._back(pk)
        refused = stepped_up_or_redirect(
            request, reverse("admin:accounts_datasubjectrequest_change", args=[pk])
        )
        if refused is not None:
            return refused
        try:
            obj = dsr.subject_erase(request=obj, actor=request.user)  # type: ignore[arg-type]
        except dsr.DsrRefused as exc:
            self._refused(request, exc)
        else:
            if obj.status == DataSubjectRequest.Status.HELD and not obj.steps.exists():
                messages.warning(request, "Erasure held: nothing was erased. " + obj.hold_reason)
                return self._back(pk)
            done = obj.steps.filter(status="done").count()
            messages.info(
                request,
                f"Erasure {obj.get_status_display().lower()}: "
                f"{done} of {obj.steps.count()} steps done.",
            )
        return self._back(pk)

    def close_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        obj = self._request(request, pk)
        if request.method == "POST":
            try:
                dsr.dsr_close(
                    request=obj,
                    actor=request.user,  # type: ignore[arg-type]
                    status=request.POST.get("status", ""),
                )
            except (dsr.DsrRefused, ValueError) as exc:
                self._refused(request, exc)
            else:
                obj.refresh_from_db()
                messages.success(
                    request,
                    f"{obj} is {obj.get_status_display().lower()} ({zoned(obj.completed_at)}).",
                )
        return self._back(pk)
