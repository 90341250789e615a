from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.forms import EmailAuthenticationForm, UserCreationForm, UserEditForm
from accounts.models import Builder, BuilderMembership, User
from core.encryption import blind_index

admin.site.login_form = EmailAuthenticationForm


class ExactEmailSearchMixin:
    """Search by exact email through the blind index (encrypted columns cannot be
    searched), or by id."""

    search_help_text = "Exact email address, or id."
    email_index_lookup = "email_index"

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        if "@" in term:
            return queryset.filter(**{self.email_index_lookup: blind_index(term)}), True
        if term.isdigit():
            return queryset.filter(pk=int(term)), False
        return queryset.none(), False


@admin.register(User)
class UserAdmin(ExactEmailSearchMixin, DjangoUserAdmin):
    form = UserEditForm
    add_form = UserCreationForm
    list_display = ("id", "email", "name", "is_staff", "is_active", "date_joined")
    list_filter = ("is_staff", "is_superuser", "is_active", "groups")
    search_fields = ("email_index",)
    ordering = ("id",)
    readonly_fields = ("date_joined", "last_login")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal data", {"fields": ("name",)}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Dates", {"fields": ("last_login", "date_joined")}),
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


class MembershipInline(admin.TabularInline):
    model = BuilderMembership
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

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        term = search_term.strip()
        if term and "@" not in term and not term.isdigit():
            return queryset.filter(slug=term), False
        return super().get_search_results(request, queryset, search_term)
