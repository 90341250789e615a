"""The account's API tokens page (``/accounts/tokens/``): make one, see them, revoke one.

Making a token asks for the password again, though the person is signed in: a token
outlives the session (up to a year, through sign-out; only "sign out everywhere" and a
new password end it, accounts.tokens), so a borrowed browser or a stolen session
cookie must not be enough to mint a lasting way in. Five wrong passwords for the
account in a quarter of an hour sign the person out, as on the step-up page, so that
the form cannot be used to guess the password either; the count is the account's, kept
in the cache and reserved before each check (accounts.guesses), so parallel requests
cannot get more guesses heard. Staff step-up
(with its authenticator code) is not asked: clients and builders have no
authenticator, and the password is the proof they do have.

An account whose email address is not verified makes no token: the page says so and
offers the link again (someone may have signed up with another person's address).

The token is shown once, in the answer to the form, and stored only as its hash: it is
never put in the session, a message or a URL. The form carries a one-time id so that
sending it again (reload, back button, parallel submits) cannot make a second token
unseen: the id is claimed in the cache (``cache.add``, which one caller wins).
"""

from __future__ import annotations

import logging
import secrets
from datetime import date, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

import audit
from accounts import guesses, tokens
from accounts.models import ApiToken, User
from audit.services import record_capped

logger = logging.getLogger(__name__)

_GUESSES = "api_token"
_FORM_ID_KEY = "api_token_form_id"
_ALREADY_SENT = "That form was already sent (or is too old): nothing was made."
# How long a sent form's id stays claimed: far longer than parallel requests take.
_FORM_CLAIM_SECONDS = 24 * 60 * 60
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


def _page(
    request: HttpRequest, user: User, form: TokenForm | None, status: int = 200
) -> HttpResponse:
    return render(
        request,
        "accounts/tokens.html",
        {
            "form": form,
            "verify_first": user.email_verified_at is None,
            "verify_first_message": tokens.VERIFY_FIRST,
            "tokens": ApiToken.objects.filter(user=user),
            "now": timezone.now(),
            "default_days": settings.API_TOKEN_DEFAULT_DAYS,
        },
        status=status,
    )


def _sign_out(request: HttpRequest, user: User, failures: int, *, heard: bool) -> HttpResponse:
    guesses.sign_out(request, user, failures, heard=heard, action="accounts.api_token.signed_out")
    messages.error(request, "Too many wrong passwords: you were signed out. Sign in again.")
    return HttpResponseRedirect(reverse("accounts:login"))


def _claim(request: HttpRequest, form_id: str, user: User) -> bool:
    """Whether this request is the one to use ``form_id``: the form this session was
    last given, and the first request to ask for it. guesses.Unavailable when the
    cache cannot say."""
    expected = request.session.get(_FORM_ID_KEY)
    if not expected or not secrets.compare_digest(str(expected), form_id):
        return False
    key = f"api-token-form:{user.pk}:{form_id}"
    try:
        return bool(caches[settings.RATE_LIMIT_CACHE].add(key, 1, _FORM_CLAIM_SECONDS))
    except Exception as exc:
        raise guesses.Unavailable from exc


def _release(form_id: str, user: User) -> None:
    """Give the form id back (nothing was made): the same form may be sent again."""
    try:
        caches[settings.RATE_LIMIT_CACHE].delete(f"api-token-form:{user.pk}:{form_id}")
    except Exception:  # the claim expires by itself; the person reloads the page
        logger.warning("accounts.api-token.form-release-failed", exc_info=True)


@never_cache
@sensitive_post_parameters("password")
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def tokens_page(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]  # login_required
    today = timezone.localdate()  # in the viewer's zone (core.middleware)
    if user.email_verified_at is None:  # a POST is refused as the booking page does
        return _page(request, user, None, status=403 if request.method == "POST" else 200)
    if request.method != "POST":
        return _page(request, user, _new_form(request, user, today))
    sent_id = request.POST.get("form_id", "").encode("ascii", "replace").decode()
    # One request per form id gets past here at a time: parallel copies of one form
    # are refused before any password is checked. Given back when nothing was made.
    try:
        if not _claim(request, sent_id, user):
            messages.error(request, _ALREADY_SENT)
            return HttpResponseRedirect(reverse("accounts:tokens"))
        attempt = guesses.Attempt(_GUESSES, user.pk)
    except guesses.Unavailable:
        _release(sent_id, user)
        messages.error(request, "Your password cannot be checked just now: try again in a minute.")
        return HttpResponseRedirect(reverse("accounts:tokens"))
    if not attempt.allowed:
        return _sign_out(request, user, attempt.failures, heard=False)
    answer = _make(request, user, TokenForm(request.POST, user=user, today=today), attempt)
    if answer.status_code != 200:  # nothing was made
        _release(sent_id, user)
    return answer


def _make(
    request: HttpRequest, user: User, form: TokenForm, attempt: guesses.Attempt
) -> HttpResponse:
    """Check the form (the password in ``attempt``'s place) and make the token: the
    page that shows it (200), or the form's errors, or the sign-out."""
    valid = form.is_valid()
    if form.has_error("password", code="password"):
        record_capped(
            "accounts.api_token.password_refused",
            category=audit.Category.SECURITY,
            actor=user,
            data={"failures_in_window": attempt.failures},
        )
        if attempt.last:
            return _sign_out(request, user, attempt.failures, heard=True)
        return _page(request, user, form, status=400)
    attempt.succeeded()  # right, or never checked (another field was missing)
    if not valid:
        return _page(request, user, form, status=400)
    now = timezone.now()
    expires_at = now + timedelta(days=(form.cleaned_data["expires_on"] - form.today).days)
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
