from __future__ import annotations

import zoneinfo
from typing import Any, cast

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import password_validation
from django.contrib.auth.forms import (
    AdminUserCreationForm,
    AuthenticationForm,
    UserChangeForm,
)

from accounts import validators
from accounts.models import NOT_ZONES, BuilderMembership, User


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


# --- Sign-up, passwords, the account page ----------------------------------------------


def _zone_choices() -> list[tuple[str, str]]:
    zones = sorted(zoneinfo.available_timezones() - NOT_ZONES)
    return [("", "Not set: the time zone of each booking"), *((zone, zone) for zone in zones)]


def _email_field(**kwargs: Any) -> forms.EmailField:
    return forms.EmailField(
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "maxlength": 254}),
        **kwargs,
    )


def _person_name(value: str, *, required: bool) -> str:
    """A person's name as others will see it: without surrounding whitespace and without
    the characters that could make it display as another (accounts/validators.py)."""
    name = value.strip()
    if required and not name:
        raise forms.ValidationError("Please give your name.")
    if validators.has_control_characters(name):
        raise forms.ValidationError(validators.CONTROL_CHARACTERS_MESSAGE)
    if name and validators.looks_blank(name):
        raise forms.ValidationError(validators.BLANK_NAME_MESSAGE)
    if validators.has_stacked_marks(name):
        raise forms.ValidationError(validators.STACKED_MARKS_MESSAGE)
    return name


def _new_password_field(label: str, **kwargs: Any) -> forms.CharField:
    return forms.CharField(
        label=label,
        strip=False,
        max_length=4096,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        **kwargs,
    )


class SignUpForm(forms.Form):
    """A client's account: email, name, password twice, optionally a time zone. The
    password is checked against AUTH_PASSWORD_VALIDATORS with the email and name it
    would sit beside."""

    email = _email_field()
    name = forms.CharField(max_length=200, widget=forms.TextInput(attrs={"autocomplete": "name"}))
    password1 = _new_password_field(
        "Password", help_text=password_validation.password_validators_help_text_html()
    )
    password2 = _new_password_field("Password again")
    time_zone = forms.ChoiceField(choices=_zone_choices, required=False, label="Time zone")

    def clean_email(self) -> str:
        return User.objects.normalize_email(self.cleaned_data["email"].strip())

    def clean_name(self) -> str:
        return _person_name(self.cleaned_data["name"], required=True)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, second = data.get("password1"), data.get("password2")
        if first and second and first != second:
            self.add_error("password2", "The two passwords are not the same.")
        elif first and "email" in data:
            candidate = User(email=data["email"], name=data.get("name", ""))
            try:
                password_validation.validate_password(first, candidate)
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return data


class PasswordResetRequestForm(forms.Form):
    email = _email_field()

    def clean_email(self) -> str:
        return User.objects.normalize_email(self.cleaned_data["email"].strip())


class ProfileForm(forms.ModelForm):
    """Name, time zone and email. A new email needs the current password (a borrowed
    session must not move the account to another address), is verified again, and
    the former address is told."""

    email = _email_field()
    time_zone = forms.ChoiceField(choices=_zone_choices, required=False, label="Time zone")
    current_password = forms.CharField(
        label="Current password (to change your email)",
        strip=False,
        required=False,
        max_length=4096,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    class Meta:
        model = User
        fields = ("email", "name", "time_zone")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.former_email = self.instance.email

    def clean_email(self) -> str:
        email = User.objects.normalize_email(self.cleaned_data["email"].strip())
        if email.casefold() == self.former_email.casefold():
            return self.former_email
        return email

    def clean_name(self) -> str:
        return _person_name(self.cleaned_data.get("name") or "", required=False)

    def clean(self) -> dict[str, Any]:
        """The password first: whether an address has an account is said only to
        someone who knows this account's password (and the page's rate limits bound
        that), never to a borrowed session."""
        data = super().clean() or {}
        if not self.email_changed(data):
            return data
        if not self.instance.check_password(data.get("current_password") or ""):
            self.add_error("current_password", "Your current password is needed, and correct.")
        elif User.objects.email_taken(data["email"], other_than=self.instance.pk):
            self.add_error("email", "This address cannot be used for your account.")
        return data

    def email_changed(self, data: dict[str, Any] | None = None) -> bool:
        email = (data if data is not None else self.cleaned_data).get("email")
        return bool(email) and email != self.former_email


class InviteMemberForm(forms.Form):
    email = _email_field(label="Their email address")
    role = forms.ChoiceField(choices=BuilderMembership.Role.choices, initial="member")

    def __init__(self, *args: Any, roles: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if roles is not None:
            field = cast(forms.ChoiceField, self.fields["role"])
            field.choices = [c for c in BuilderMembership.Role.choices if c[0] in roles]

    def clean_email(self) -> str:
        return User.objects.normalize_email(self.cleaned_data["email"].strip())
