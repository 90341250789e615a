"""Personal data in the back-office: masked by default, shown in clear on purpose.

Lists always show personal values masked (``j***@e***.com``, initials), for everyone.
A detail page shows them in clear only to staff allowed to see clients' data
(``accounts.view_personal_data``: Privacy, superusers), and each such page view is an
``access`` audit entry. Other staff with ``accounts.reveal_personal_data`` (Support)
see them masked, with a "reveal" link that asks why; the answer is audited (who,
whose, which fields, why) before the values are shown, once, on that page.

``PersonalDataAdminMixin`` does this for a ModelAdmin: name the personal attributes
in ``personal_fields`` (attribute or method name to its kind) and use those names in
``list_display``, ``fields`` or ``readonly_fields`` as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from django import forms
from django.contrib.admin.utils import unquote
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.html import format_html

import audit
from accounts.models import User
from accounts.rights import acting_user
from core.masking import MASK, mask_email

KINDS = ("email", "name", "text")


def initials(name: str) -> str:
    """``Clara Client`` -> ``C. C.``"""
    parts = [part for part in str(name or "").split() if part]
    return " ".join(f"{part[0]}." for part in parts) or MASK


def mask(kind: str, value: Any) -> str:
    if value in (None, ""):
        return ""
    if kind == "email":
        return mask_email(str(value))
    if kind == "name":
        return initials(str(value))
    return MASK


def may_see_in_clear(user: Any, subject: Any = None) -> bool:
    """Superusers; and staff allowed to see clients' data, for a client (a staff
    member's own data is not a Privacy officer's to read)."""
    if not (user and user.is_active):
        return False
    if user.is_superuser:
        return True
    staff_subject = subject is not None and (subject.is_staff or subject.is_superuser)
    return user.has_perm("accounts.view_personal_data") and not staff_subject


def may_reveal(user: Any) -> bool:
    return may_see_in_clear(user) or bool(
        user and user.is_active and user.has_perm("accounts.reveal_personal_data")
    )


def record_access(
    *,
    request: HttpRequest,
    subject: User | None,
    fields: list[str],
    reason: str,
    via: str,
    target: Any = None,
) -> None:
    """Audit that ``request.user`` saw ``subject``'s ``fields`` in clear, and why."""
    audit.record(
        "accounts.personal_data.accessed",
        category=audit.Category.ACCESS,
        actor=request.user,
        target=subject if subject is not None else target,
        data={
            "fields": sorted(fields),
            "via": via,
            "reason": reason[:500],
            "subject": subject.pk if subject is not None else None,
            **({"object": f"{target._meta.label_lower}:{target.pk}"} if target is not None else {}),
        },
    )


class RevealForm(forms.Form):
    reason = forms.CharField(
        min_length=10,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why you need to see it (the client's request, a ticket number). Recorded.",
    )

    def clean_reason(self) -> str:
        reason: str = self.cleaned_data["reason"].strip()
        # Words, in any script: ten emoji or digits are not a reason anyone can audit.
        words = sum(character.isalpha() for character in reason)
        if "\x00" in reason or len(reason) < 10 or words < 5:
            raise forms.ValidationError("Say why, in a few words (at least 10 characters).")
        return reason


def _value(obj: Any, name: str) -> Any:
    value = getattr(obj, name, None)
    return value() if callable(value) else value


if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

    _AdminBase = ModelAdmin[Any]
else:
    _AdminBase = object


class PersonalDataAdminMixin(_AdminBase):
    """See the module's docstring."""

    personal_fields: ClassVar[dict[str, str]] = {}
    reveal_template = "admin/reveal.html"

    def personal_subject(self, obj: Any) -> User | None:
        """The person whose data ``obj`` holds (for the audit entry)."""
        if isinstance(obj, User):
            return obj
        client = getattr(obj, "client", None)
        return client if isinstance(client, User) else None

    # --- display ---------------------------------------------------------------

    def _display(self, name: str, kind: str, *, detail: bool) -> Callable[[Any], Any]:
        def shown(obj: Any) -> Any:
            value = _value(obj, name)
            if value in (None, ""):
                return "-"
            if detail and may_see_in_clear(acting_user(), self.personal_subject(obj)):
                return value
            masked = mask(kind, value)
            if detail and may_reveal(acting_user()):
                return format_html('{} <a href="reveal/" class="reveal">reveal</a>', masked)
            return masked

        shown.short_description = self._label(name)  # type: ignore[attr-defined]
        shown.__name__ = f"{name}_{'detail' if detail else 'masked'}"
        return shown

    def _label(self, name: str) -> str:
        try:
            return str(self.model._meta.get_field(name).verbose_name).capitalize()
        except FieldDoesNotExist:  # a property or method
            return name.replace("_", " ").capitalize()

    def _swap(self, names: Any, *, detail: bool) -> list[Any]:
        return [
            self._display(n, self.personal_fields[n], detail=detail)
            if isinstance(n, str) and n in self.personal_fields
            else n
            for n in names
        ]

    def get_list_display(self, request: HttpRequest) -> Any:
        return self._swap(super().get_list_display(request), detail=False)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))
        readonly += [f"{n}_shown" for n in self.personal_fields]
        if not may_see_in_clear(request.user, self._subject(obj)):
            readonly += [n for n in self.personal_fields if n not in readonly]
        return readonly

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self._swap_form(super().get_fields(request, obj), request, obj)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        return [
            (title, {**options, "fields": self._swap_form(options["fields"], request, obj)})
            for title, options in fieldsets
        ]

    def _subject(self, obj: Any) -> User | None:
        return None if obj is None else self.personal_subject(obj)

    def _swap_form(self, names: Any, request: HttpRequest, obj: Any = None) -> Any:
        clear = may_see_in_clear(request.user, self._subject(obj))
        if clear and self.has_change_permission(request, obj):
            return names  # editable in clear (Privacy correcting a client)
        swapped = [
            f"{n}_shown" if isinstance(n, str) and n in self.personal_fields else n for n in names
        ]
        # A read-only admin lists the display names among its fields already: once each.
        return list(dict.fromkeys(swapped))

    def __getattr__(self, name: str) -> Any:
        # ``<field>_shown``: the detail page's display of a personal field.
        if name.endswith("_shown"):
            field = name.removesuffix("_shown")
            if field in type(self).personal_fields:
                return self._display(field, type(self).personal_fields[field], detail=True)
        raise AttributeError(name)

    # --- the detail page: clear views are audited ---------------------------------

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        response = super().change_view(request, object_id, form_url, extra_context)
        viewed = request.method == "GET" and response.status_code == 200 and self.personal_fields
        # The object the page showed (its context holds it): not fetched a second time.
        context = getattr(response, "context_data", None) or {}
        obj = context.get("original") if viewed else None
        subject = self.personal_subject(obj) if obj is not None else None
        if obj is not None and may_see_in_clear(request.user, subject):
            record_access(
                request=request,
                subject=subject,
                fields=list(self.personal_fields),
                reason="detail page",
                via="admin.detail",
                target=obj,
            )
        return response

    # --- reveal --------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta
        extra = [
            path(
                "<path:object_id>/change/reveal/",
                self.admin_site.admin_view(self.reveal_view),
                name=f"{opts.app_label}_{opts.model_name}_reveal",
            )
        ]
        return extra + super().get_urls()

    def reveal_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404
        if not (self.has_view_permission(request, obj) and may_reveal(request.user)):
            raise PermissionDenied
        form = RevealForm(request.POST if request.method == "POST" else None)
        values: list[tuple[str, Any]] = []
        if request.method == "POST" and form.is_valid():
            record_access(
                request=request,
                subject=self.personal_subject(obj),
                fields=list(self.personal_fields),
                reason=form.cleaned_data["reason"],
                via="admin.reveal",
                target=obj,
            )
            values = [(self._label(n), _value(obj, n)) for n in self.personal_fields]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Reveal personal data: {obj}",
            "opts": self.model._meta,
            "original": obj,
            "form": form,
            "values": values,
            "fields": [str(n).replace("_", " ") for n in self.personal_fields],
        }
        response = TemplateResponse(request, self.reveal_template, context)
        response["Cache-Control"] = "no-store"
        return response
