from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import (
    AdminUserCreationForm,
    AuthenticationForm,
    UserChangeForm,
)

from accounts.models import User


class _EmailLoginMixin:
    """Ask for an email of any length and case where Django asks for a username."""

    fields: dict[str, forms.Field]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = cast(forms.CharField, self.fields["username"])
        field.label = "Email"
        field.max_length = 254
        field.widget = forms.EmailInput(
            attrs={"autofocus": True, "autocomplete": "email", "maxlength": 254}
        )


class EmailAuthenticationForm(_EmailLoginMixin, AdminAuthenticationForm):
    """The admin's login form (staff only), by email."""

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        # Django's says "both fields may be case-sensitive": an email is not.
        "invalid_login": "Please enter the email and password of a staff account.",
    }


class ClientAuthenticationForm(_EmailLoginMixin, AuthenticationForm):
    """The site's login form for clients and builders, by email."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That email and password do not match an account.",
    }


class _UniqueEmailMixin:
    instance: User
    cleaned_data: dict[str, Any]

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip()
        if User.objects.email_taken(email, other_than=self.instance.pk):
            raise forms.ValidationError("A user with this email address already exists.")
        return email


class UserCreationForm(_UniqueEmailMixin, AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "name")


class UserEditForm(_UniqueEmailMixin, UserChangeForm):
    class Meta:
        model = User
        fields = (
            "email",
            "name",
            "time_zone",
            "password",
            "is_active",
            "is_staff",
            "is_superuser",
            "groups",
            "user_permissions",
        )
