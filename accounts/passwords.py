"""Passwords: the "not the email" rule, reset by email, and change on the account page.

A reset request answers the same page for every well-formed address (known, unknown,
inactive) after the same work: the view enqueues the address's blind indexes and
audits the request, and the worker finds the account, if any (accounts/emails.py).
A reset link works once, until PASSWORD_RESET_MAX_AGE_MINUTES; using it ends every
session of the account (``sessions_valid_after``), every other reset link and every API
token, signs nobody in, and leaves an authenticator app where it was: staff still give
their TOTP code at step-up.

A change on the account page (which asks the current password) revokes every API token
too: each was made by proving that password, and a person who changes it because it
may have leaked must not find a token minted with it still working for a year. The
integrations that used one need a new token; the page and the email say so.
"""

from __future__ import annotations

from typing import Any, cast

from axes.models import AccessAttempt
from django import forms
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm, SetPasswordForm
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

import audit
from accounts import emails, links, tokens
from accounts.forms import PasswordResetRequestForm
from accounts.models import OneTimeLink, User
from audit.services import record_capped
from core.encryption import blind_index, blind_index_bucket, blind_indexes

Purpose = OneTimeLink.Purpose


class NotTheEmailValidator:
    """A password is never the account's email address (in any letter case, with or
    without spaces around it): the first thing a guesser tries."""

    def validate(self, password: str, user: Any = None) -> None:
        email = (getattr(user, "email", "") or "").strip()
        if email and password.strip().casefold() == email.casefold():
            raise ValidationError(
                "Your password cannot be your email address.", code="password_is_email"
            )

    def get_help_text(self) -> str:
        return "Your password cannot be your email address."


# --- Reset ------------------------------------------------------------------------------


def password_reset_request(*, email: str) -> None:
    """Audit the request and enqueue the worker's look-up, the same for every address.
    Capped: anyone may ask, as often as the rate limits allow. The address is in the
    entry's sealed part only; the chained part has a bucket of its index."""
    index = blind_index(email)
    record_capped(
        "accounts.password_reset.requested",
        category=audit.Category.SECURITY,
        actor=None,
        data={"email_bucket": blind_index_bucket(index)},
        personal_data={"email": email, "email_index": index},
    )
    emails.send("password_reset", indexes=blind_indexes(email))


def password_reset_complete(*, secret: str, user: User, password: str) -> bool:
    """Set the new password with the link, spending it; False if it was spent (or
    expired) meanwhile. Every session of the account ends, and every other reset link
    and every API token stops working. Following the link proves the address: an
    unverified account whose link was sent to its present address becomes verified."""
    with transaction.atomic():
        link = links.spend(secret, Purpose.RESET_PASSWORD)
        if link is None or link.user_id != user.pk:
            return False
        now = timezone.now()
        user.set_password(password)
        user.sessions_valid_after = now
        fields = ["password", "sessions_valid_after"]
        if user.email_verified_at is None and link.email_index in blind_indexes(user.email):
            user.email_verified_at = now
            fields.append("email_verified_at")
        user.save(update_fields=fields)
        links.revoke(user=user, purpose=Purpose.RESET_PASSWORD)
        tokens.api_tokens_revoke_all(user=user, actor=user, reason="password_reset")
        # Whoever guessed at the old password locked the account out (django-axes, from
        # every address): the owner, who has just proved the address, gets back in.
        unlocked, _ = AccessAttempt.objects.filter(username__in=blind_indexes(user.email)).delete()
        audit.record(
            "accounts.password_reset.completed",
            category=audit.Category.SECURITY,
            actor=user,
            target=user,
            data={
                "is_staff": user.is_staff,
                "verified_email": "email_verified_at" in fields,
                "sign_in_failures_cleared": unlocked,
            },
        )
        emails.send("password_changed", user=user)
    return True


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def password_reset(request: HttpRequest) -> HttpResponse:
    form = PasswordResetRequestForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        password_reset_request(email=form.cleaned_data["email"])
        return render(request, "accounts/password_reset_sent.html")
    return render(
        request,
        "accounts/password_reset.html",
        {"form": form},
        status=400 if form.is_bound else 200,
    )


# Longer input is refused before anything hashes or compares it.
MAX_PASSWORD_LENGTH = 4096


def _cap_lengths(form: forms.Form) -> None:
    for field in form.fields.values():
        field.validators.append(MaxLengthValidator(MAX_PASSWORD_LENGTH))
        field.widget.attrs["maxlength"] = str(MAX_PASSWORD_LENGTH)


class _ResetForm(SetPasswordForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _cap_lengths(self)


@never_cache
@sensitive_post_parameters("new_password1", "new_password2")
@require_http_methods(["GET", "HEAD", "POST"])
def password_reset_confirm(request: HttpRequest, secret: str) -> HttpResponse:
    """The link's page: a new password, twice. The link is spent only by a valid
    form, so a mail scanner that opens it spends nothing."""
    link = links.peek(secret, Purpose.RESET_PASSWORD)
    if link is None or link.user is None or not link.user.is_active:
        return _link_invalid(request, "password reset")
    form = _ResetForm(link.user, request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        if not password_reset_complete(
            secret=secret, user=link.user, password=form.cleaned_data["new_password1"]
        ):
            return _link_invalid(request, "password reset")
        messages.success(
            request,
            "Your password was changed, every session signed out and every API token "
            "revoked. Sign in with your new password.",
        )
        return HttpResponseRedirect(reverse("accounts:login"))
    # 200 with the form's errors, not 400: Django logs every 4xx with its path, and
    # this path holds a live link.
    return render(request, "accounts/password_reset_confirm.html", {"form": form})


def _link_invalid(request: HttpRequest, what: str) -> HttpResponse:
    """One answer for a link that never existed, expired or was used."""
    return render(request, "accounts/link_invalid.html", {"what": what}, status=410)


# --- Change -----------------------------------------------------------------------------


class ChangeForm(PasswordChangeForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _cap_lengths(self)


@login_required
@sensitive_post_parameters("old_password", "new_password1", "new_password2")
@require_POST
def password_change(request: HttpRequest) -> HttpResponse:
    """From the account page: the current password, then the new one twice. Other
    sessions end (their session hash no longer matches); this one goes on. Every API
    token is revoked (module docstring). The audit entry is User.save's
    ``accounts.user.password_changed``, beside the tokens' ``revoked_all``."""
    user = User.objects.get(pk=cast(int, request.user.pk))
    form = ChangeForm(user, request.POST)
    if not form.is_valid():
        from accounts.account import account_page

        return account_page(request, password_form=form, status=400)
    with transaction.atomic():
        form.save()
        links.revoke(user=user, purpose=Purpose.RESET_PASSWORD)
        links.revoke(user=user, purpose=Purpose.RECOVER_SESSION)
        revoked = tokens.api_tokens_revoke_all(user=user, actor=user, reason="password_change")
        emails.send("password_changed", user=user)
    update_session_auth_hash(request, user)
    messages.success(
        request,
        "Your password was changed. Your other sessions were signed out"
        + (f" and your {revoked} API token(s) revoked." if revoked else "."),
    )
    return HttpResponseRedirect(reverse("accounts:account"))
