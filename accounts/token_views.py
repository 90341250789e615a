"""The account's API tokens page (``/accounts/tokens/``): make one, see them, revoke one.

Making a token asks for the password again, though the person is signed in: a token
outlives the session (up to a year, through sign-out and "sign out everywhere"), so a
borrowed browser or a stolen session cookie must not be enough to mint a lasting way
in. Five wrong passwords in one session sign the person out, as on the step-up page,
so that the form cannot be used to guess the password either. Staff step-up (with its
authenticator code) is not asked: clients and builders have no authenticator, and the
password is the proof they do have.

The token is shown once, in the answer to the form, and stored only as its hash: it is
never put in the session, a message or a URL. The form carries a one-time id so that
sending it again (reload, back button) cannot make a second token unseen.
"""

from __future__ import annotations

import secrets
from datetime import date, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

import audit
from accounts import tokens
from accounts.models import ApiToken, User
from audit.services import record_capped

MAX_PASSWORD_FAILURES = 5
_FAILURES_KEY = "api_token_password_failures"
_FORM_ID_KEY = "api_token_form_id"
# What a new token may do unless its owner ticks more: reading, not changing.
DEFAULT_SCOPES = [ApiToken.Scope.BOOKINGS_READ.value, ApiToken.Scope.EVENT_TYPES_READ.value]


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=tokens.MAX_NAME_LENGTH,
        help_text="Where it will be used, so that you can tell tokens apart.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    scopes = forms.MultipleChoiceField(
        choices=ApiToken.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one scope."},
    )
    expires_on = forms.DateField(
        label="Expires on",
        input_formats=["%Y-%m-%d"],
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        error_messages={"invalid": "Enter a date like 2027-02-28."},
    )
    password = forms.CharField(
        label="Your password",
        strip=False,
        max_length=4096,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    form_id = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args: Any, user: User, today: date, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.today = today
        self.latest = today + timedelta(days=settings.API_TOKEN_MAX_DAYS)
        self.fields["expires_on"].help_text = (
            f"At most {settings.API_TOKEN_MAX_DAYS} days away ({self.latest:%Y-%m-%d}); "
            "the token stops at this time of day on that date."
        )
        self.fields["expires_on"].widget.attrs.update(
            min=(today + timedelta(days=1)).isoformat(), max=self.latest.isoformat()
        )

    def clean_name(self) -> str:
        try:
            return tokens.check_name(self.cleaned_data["name"])
        except tokens.TokenInvalid as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_expires_on(self) -> date:
        chosen: date = self.cleaned_data["expires_on"]
        if chosen <= self.today:
            raise forms.ValidationError("Choose a date after today.")
        if chosen > self.latest:
            raise forms.ValidationError(
                f"A token lasts at most {settings.API_TOKEN_MAX_DAYS} days: choose "
                f"{self.latest:%Y-%m-%d} or earlier."
            )
        return chosen

    def clean_password(self) -> str:
        password: str = self.cleaned_data["password"]
        if "\x00" in password or not self.user.check_password(password):
            raise forms.ValidationError("That is not your password.", code="password")
        return password


def _new_form(request: HttpRequest, user: User, today: date) -> TokenForm:
    form_id = secrets.token_urlsafe(16)
    request.session[_FORM_ID_KEY] = form_id
    return TokenForm(
        user=user,
        today=today,
        initial={
            "scopes": DEFAULT_SCOPES,
            "expires_on": today + timedelta(days=settings.API_TOKEN_DEFAULT_DAYS),
            "form_id": form_id,
        },
    )


def _page(request: HttpRequest, user: User, form: TokenForm, status: int = 200) -> HttpResponse:
    return render(
        request,
        "accounts/tokens.html",
        {
            "form": form,
            "tokens": ApiToken.objects.filter(user=user),
            "now": timezone.now(),
            "default_days": settings.API_TOKEN_DEFAULT_DAYS,
        },
        status=status,
    )


def _wrong_password(request: HttpRequest, user: User) -> HttpResponse | None:
    """Count a wrong password; at MAX_PASSWORD_FAILURES sign the person out (the
    response that does it), else None."""
    failures = int(request.session.get(_FAILURES_KEY, 0)) + 1
    request.session[_FAILURES_KEY] = failures
    record_capped(
        "accounts.api_token.password_refused",
        category=audit.Category.SECURITY,
        actor=user,
        data={"failures_in_session": failures},
    )
    if failures < MAX_PASSWORD_FAILURES:
        return None
    audit.record(
        "accounts.api_token.signed_out",
        category=audit.Category.SECURITY,
        actor=user,
        target=user,
        data={"failures_in_session": failures},
    )
    logout(request)
    messages.error(request, "Too many wrong passwords: you were signed out. Sign in again.")
    return HttpResponseRedirect(reverse("accounts:login"))


@never_cache
@sensitive_post_parameters("password")
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def tokens_page(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]  # login_required
    today = timezone.localdate()  # in the viewer's zone (core.middleware)
    if request.method != "POST":
        return _page(request, user, _new_form(request, user, today))

    form = TokenForm(request.POST, user=user, today=today)
    expected = request.session.get(_FORM_ID_KEY)
    if not expected or not secrets.compare_digest(
        str(expected), request.POST.get("form_id", "").encode("ascii", "replace").decode()
    ):
        messages.error(request, "That form was already sent (or is too old): nothing was made.")
        return HttpResponseRedirect(reverse("accounts:tokens"))
    if not form.is_valid():
        if form.has_error("password", code="password"):
            signed_out = _wrong_password(request, user)
            if signed_out is not None:
                return signed_out
        return _page(request, user, form, status=400)

    now = timezone.now()
    expires_at = now + timedelta(days=(form.cleaned_data["expires_on"] - today).days)
    try:
        made = tokens.api_token_create(
            user=user,
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            expires_at=expires_at,
        )
    except tokens.TokenInvalid as exc:
        form.add_error(None, str(exc))
        return _page(request, user, form, status=400)
    request.session.pop(_FORM_ID_KEY, None)
    request.session.pop(_FAILURES_KEY, None)
    return render(
        request,
        "accounts/tokens_created.html",
        {"token": made.token, "secret": made.secret},
    )


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]  # login_required
    # Someone else's token is the same 404 as one that does not exist.
    token = get_object_or_404(ApiToken, pk=pk, user=user)
    if tokens.api_token_revoke(token=token, actor=user):
        messages.success(request, f"Token {token.prefix}… revoked: it no longer works.")
    else:
        messages.info(request, f"Token {token.prefix}… was already revoked.")
    return HttpResponseRedirect(reverse("accounts:tokens"))
