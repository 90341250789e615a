from __future__ import annotations

from typing import Any, ClassVar

import django_otp.plugins.otp_totp.admin  # noqa: F401 (see AuthenticatorAppAdmin)
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_http_methods
from django_otp.plugins.otp_totp.models import TOTPDevice

import audit
from accounts import access_review, dsr, reveal, rights, signup
from accounts.forms import (
    EmailAuthenticationForm,
    InviteMemberForm,
    UserCreationForm,
    UserEditForm,
)
from accounts.models import Builder, BuilderMembership, User
from accounts.reveal import PersonalDataAdminMixin
from core.encryption import blind_indexes
from core.stepup import StepUpAdminMixin, stepped_up_or_redirect

admin.site.login_form = EmailAuthenticationForm


class AccessReviewSignOffForm(forms.Form):
    note = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="What you checked and what you asked to change (tickets). Recorded.",
    )
    # The fingerprint of the review as the page showed it (access_review.fingerprint),
    # written by the template: a page rendered again carries the new one.
    reviewed = forms.CharField(max_length=64, widget=forms.HiddenInput)

    def clean_note(self) -> str:
        note: str = self.cleaned_data["note"].strip()
        letters = sum(character.isalpha() for character in note)
        if "\x00" in note or len(note) < 10 or letters < 5:
            raise forms.ValidationError("Say what you reviewed, in a few words.")
        return note


class ExactEmailSearchMixin:
    """Search by exact email through the blind index (encrypted columns cannot be
    searched), or by id."""

    email_index_lookup: ClassVar[str] = "email_index"

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        if "@" in term:
            # Under every configured blind-index key: a re-index may be under way.
            lookup = f"{self.email_index_lookup}__in"
            return queryset.filter(**{lookup: blind_indexes(term)}).distinct(), True
        if term.isascii() and term.isdigit() and len(term) <= 18:  # an id fits a bigint
            return queryset.filter(pk=int(term)), False
        return queryset.none(), False


class EmailVerifiedFilter(admin.SimpleListFilter):
    title = "email verified"
    parameter_name = "verified"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("yes", "no"):
            return queryset.filter(email_verified_at__isnull=self.value() == "no")
        return queryset


@admin.register(User)
class UserAdmin(PersonalDataAdminMixin, ExactEmailSearchMixin, DjangoUserAdmin):
    """People, for staff who may view or correct them. Rights are a superuser's alone
    (``accounts.rights``): nobody else sees those fields, and a request that sets them
    anyway is refused and audited before anything is saved."""

    form = UserEditForm
    add_form = UserCreationForm
    # Masked in the list for everyone; in clear on a client's page for Privacy and
    # superusers (audited), revealed by Support with a reason (accounts/reveal.py).
    personal_fields: ClassVar[dict[str, str]] = {"email": "email", "name": "name"}
    list_display = ("id", "email", "name", "is_staff", "is_active", "verified", "date_joined")
    list_filter = ("is_staff", "is_superuser", "is_active", EmailVerifiedFilter, "groups")
    search_fields = ("email_index",)
    search_help_text = "Exact email address, or id."
    ordering = ("id",)
    readonly_fields = ("date_joined", "last_login", "email_verified_at")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal data", {"fields": ("name", "time_zone")}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Dates", {"fields": ("last_login", "date_joined", "email_verified_at")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "name", "usable_password", "password1", "password2"),
            },
        ),
    )

    @admin.display(boolean=True, description="Email verified", ordering="email_verified_at")
    def verified(self, obj: User) -> bool:
        return obj.email_verified_at is not None

    def get_urls(self) -> list[URLPattern]:
        review = require_http_methods(["GET", "POST"])(self.access_review_view)
        return [
            path(
                "access-review/",
                self.admin_site.admin_view(review),
                name="accounts_access_review",
            ),
            *super().get_urls(),
        ]

    def access_review_view(self, request: HttpRequest) -> HttpResponse:
        """The quarterly access review (accounts/access_review.py): every staff member's
        rights and flags; a superuser or an Auditor signs it off, stepped up."""
        if not access_review.may_review(request.user):
            raise PermissionDenied
        page = reverse("admin:accounts_access_review")
        form = AccessReviewSignOffForm(request.POST if request.method == "POST" else None)
        if request.method == "POST":
            refused = stepped_up_or_redirect(request, page)
            if refused is not None:
                return refused
            if form.is_valid():
                try:
                    access_review.access_review_sign_off(
                        actor=request.user,  # type: ignore[arg-type]  # admin_view: signed in
                        note=form.cleaned_data["note"],
                        reviewed=form.cleaned_data["reviewed"],
                    )
                except access_review.ReviewChangedError as exc:
                    messages.error(request, str(exc))
                else:
                    messages.success(request, "Access review signed off.")
                    return HttpResponseRedirect(page)
        rows = access_review.staff_access(actor=request.user)
        # Staff members' names are shown in clear (the reviewer must know who is who):
        # a staff access to personal data, audited like any other.
        audit.record(
            "accounts.access_review.viewed",
            category=audit.Category.ACCESS,
            actor=request.user,
            data={"staff": len(rows), "fields": ["name"], "via": "admin.access_review"},
        )
        last = access_review.last_sign_off()
        reviewer = (
            User.objects.filter(pk=last.reviewer_id).first()
            if last and last.reviewer_id is not None
            else None
        )
        response = TemplateResponse(
            request,
            "admin/accounts/access_review.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": "Quarterly access review",
                "rows": [(row, reveal.mask("email", row.user.email)) for row in rows],
                "staff_count": len(rows),
                "inactive_count": sum(row.inactive for row in rows),
                "over_privileged_count": sum(bool(row.over_privileged) for row in rows),
                "inactive_days": settings.ACCESS_REVIEW_INACTIVE_DAYS,
                "interval_days": settings.ACCESS_REVIEW_INTERVAL_DAYS,
                "last": last,
                "reviewer": reviewer,
                "next_due": access_review.next_due(last),
                "due": access_review.is_due(),
                "form": form,
                # What a signature will be checked against: the page as shown now.
                "reviewed": access_review.fingerprint(rows),
            },
        )
        response["Cache-Control"] = "no-store"
        return response

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        hidden = set(rights.protected_fields(request.user, obj)) - {"email", "name"}
        if not hidden:
            return fieldsets
        shown = []
        for title, options in fieldsets:
            fields = [name for name in options["fields"] if name not in hidden]
            if fields:
                shown.append((title, {**options, "fields": tuple(fields)}))
        return tuple(shown)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            # A staff account's email and name are shown, not editable, to non-superusers.
            readonly += [
                name
                for name in rights.protected_fields(request.user, obj)
                if name in ("email", "name")
            ]
        return readonly

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        # Checked before Django's atomic block, which a refusal would roll back together
        # with its audit entry.
        if request.method == "POST":
            target = self.get_object(request, object_id) if object_id else None
            attempted = [
                name
                for name in rights.protected_fields(request.user, target)
                if name in request.POST or f"{name}_0" in request.POST
            ]
            if attempted:
                rights.refuse(
                    actor=request.user,
                    target=target,
                    attempted=attempted,
                    via="admin.change" if target else "admin.add",
                )
            # A superuser granting or removing rights confirms it is them first.
            superuser = request.user.is_superuser
            if superuser and rights.rights_posted_change(target, request.POST):
                refused = stepped_up_or_redirect(request, request.get_full_path())
                if refused is not None:
                    return refused
        return super().changeform_view(request, object_id, form_url, extra_context)

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> Any:
        target = self.get_object(request, unquote(id))
        if target is not None and not rights.may_set_password(request.user, target):
            rights.refuse(
                actor=request.user, target=target, attempted=["password"], via="admin.password"
            )
        if request.method == "POST":
            refused = stepped_up_or_redirect(request, request.get_full_path())
            if refused is not None:
                return refused
        return super().user_change_password(request, id, form_url)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """A correction by staff enters our audit trail: which fields, by whom; an email's
        old and new value in the entry's sealed personal part."""
        super().save_model(request, obj, form, change)
        changed = [name for name in form.changed_data if name not in rights.RIGHTS_FIELDS]
        if not change or not changed:
            return
        personal = {}
        if "email" in changed:
            personal["email"] = {"from": form.initial.get("email", ""), "to": obj.email}
        if "name" in changed:
            personal["name"] = {"from": form.initial.get("name", ""), "to": obj.name}
        audit.record(
            "accounts.user.changed",
            category=audit.Category.SECURITY,
            actor=request.user,
            target=obj,
            data={"fields": sorted(changed), "via": "admin"},
            personal_data=personal or None,
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Deleting a person is erasing them: for whoever may carry out an erasure."""
        if obj is not None and rights.is_staff_account(obj) and not request.user.is_superuser:
            return False
        return request.user.has_perm("accounts.carry_out_erasure")

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        # A bulk delete would cascade; an erasure is one person at a time.
        actions.pop("delete_selected", None)
        return actions

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> Any:
        """ "Delete" files (or carries on with) an erasure request and runs it, stepped
        up: the account is anonymised, never deleted with everything pointing at it."""
        user = self.get_object(request, unquote(object_id))
        if user is None:
            return super().delete_view(request, object_id, extra_context)
        if not self.has_delete_permission(request, user):
            raise PermissionDenied
        if request.method == "POST":
            refused = stepped_up_or_redirect(request, request.get_full_path())
            if refused is not None:
                return refused
            try:
                erasure = dsr.user_delete(user=user, actor=request.user)  # type: ignore[arg-type]
            except dsr.DsrRefused as exc:
                messages.error(request, str(exc))
                return HttpResponseRedirect(request.get_full_path())
            messages.info(request, f"Erasure {erasure.get_status_display().lower()}.")
            return HttpResponseRedirect(
                reverse("admin:accounts_datasubjectrequest_change", args=[erasure.pk])
            )
        return TemplateResponse(
            request,
            "accounts/dsr/user_delete.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "original": user,
                "title": "Erase this person",
                "holds": dsr.holds_for_subject(subject=user),
            },
        )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        raise PermissionDenied("A person is erased (delete_view), never deleted by cascade.")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        raise PermissionDenied("A person is erased (delete_view), never deleted by cascade.")


class MembershipForm(forms.ModelForm):
    """A member added by hand is never a staff account (as by invitation: a member sees
    the builder's clients and refunds them, outside staff's controls)."""

    class Meta:
        model = BuilderMembership
        fields = ("user", "role")

    def clean_user(self) -> User:
        user = self.cleaned_data["user"]
        if rights.is_staff_account(user):
            raise forms.ValidationError(signup.STAFF_ACCOUNT_REFUSED)
        return user


class MembershipInline(admin.TabularInline):
    model = BuilderMembership
    form = MembershipForm
    extra = 0
    raw_id_fields = ("user",)


@admin.register(Builder)
class BuilderAdmin(ExactEmailSearchMixin, admin.ModelAdmin):
    list_display = ("name", "slug", "time_zone", "is_active", "created_at")
    list_filter = ("is_active",)
    prepopulated_fields = {"slug": ("name",)}
    search_fields = ("slug",)
    search_help_text = "Exact slug, a member's exact email address, or id."
    email_index_lookup = "members__email_index"
    inlines = [MembershipInline]

    def get_urls(self) -> list[URLPattern]:
        invite = require_http_methods(["GET", "POST"])(self.invite_view)
        return [
            path(
                "<path:object_id>/invite/",
                self.admin_site.admin_view(invite),
                name="accounts_builder_invite",
            ),
            *super().get_urls(),
        ]

    def invite_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Invite an email address to join this builder (accounts.signup.member_invite):
        superusers only, stepped up (a member sees the builder's clients and refunds
        them in full; the builder's owners invite from their account page), never to a
        staff account's address. Audited."""
        builder = self.get_object(request, unquote(object_id))
        if builder is None:
            raise Http404("No such builder.")
        roles = signup.may_invite(request.user, builder)
        if not roles or not request.user.is_staff:
            raise PermissionDenied
        page = reverse("admin:accounts_builder_invite", args=[builder.pk])
        refused = stepped_up_or_redirect(request, page)
        if refused is not None:
            return refused
        form = InviteMemberForm(request.POST if request.method == "POST" else None, roles=roles)
        if request.method == "POST" and form.is_valid():
            try:
                signup.member_invite(
                    actor=request.user,
                    builder=builder,
                    email=form.cleaned_data["email"],
                    role=form.cleaned_data["role"],
                )
            except signup.InvitationRefused as exc:
                form.add_error("email", str(exc))
            else:
                messages.success(request, "Invitation sent: the link works once, for 7 days.")
                return HttpResponseRedirect(
                    reverse("admin:accounts_builder_change", args=[builder.pk])
                )
        return TemplateResponse(
            request,
            "admin/accounts/builder/invite.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "original": builder,
                "title": f"Invite a member to {builder.name}",
                "form": form,
            },
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        term = search_term.strip()
        if term and "@" not in term and not (term.isascii() and term.isdigit()):
            return queryset.filter(slug=term), False
        return super().get_search_results(request, queryset, search_term)


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(DjangoGroupAdmin):
    """A group's permissions are rights: a superuser's to change, whatever the
    permissions say, after stepping up."""

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        if request.method == "POST" and request.user.is_superuser:
            refused = stepped_up_or_redirect(request, request.get_full_path())
            if refused is not None:
                return refused
        return super().changeform_view(request, object_id, form_url, extra_context)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> Any:
        if request.method == "POST" and request.user.is_superuser:
            refused = stepped_up_or_redirect(request, request.get_full_path())
            if refused is not None:
                return refused
        return super().delete_view(request, object_id, extra_context)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser


# Data-subject requests (registered by importing their admin).
from accounts import dsr_admin  # noqa: E402, F401

# django-otp's own admin lets whoever may add a device give any staff member a key of
# their choosing (a second factor someone else holds): ours lists devices for
# superusers, who may only remove one (a lost phone), stepped up and audited. Staff
# enrol their own at /accounts/two-factor/. django-otp's module is imported at the
# top, so that this registration is the one that stays (autodiscovery imports a
# module once).
admin.site.unregister(TOTPDevice)


@admin.register(TOTPDevice)
class AuthenticatorAppAdmin(StepUpAdminMixin, admin.ModelAdmin):
    list_display = ("user", "name", "confirmed", "created_at", "last_used_at")
    list_filter = ("confirmed",)
    fields = ("user", "name", "confirmed", "created_at", "last_used_at")
    readonly_fields = fields
    step_up_actions = frozenset({"delete_selected"})

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> Any:
        if request.method == "POST":
            refused = stepped_up_or_redirect(request, request.get_full_path())
            if refused is not None:
                return refused
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self.delete_queryset(request, type(obj).objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for device in queryset.select_related("user"):
            audit.record(
                "accounts.totp.removed",
                category=audit.Category.SECURITY,
                actor=request.user,
                target=device.user,
                data={"device": device.pk},
            )
        queryset.delete()
