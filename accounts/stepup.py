"""The step-up page (password again, plus a TOTP code for staff who enrolled one) and
the page where staff enrol an authenticator app.

``core.stepup`` holds the session stamp and the checks that actions use; this module
is where a person earns the stamp. Every step-up, every failure and every enrolment
is audited. Five wrong answers for the account in a quarter of an hour sign the person
out: a stolen session cookie cannot be used to guess the password here. The count is
the account's, in the cache, and each check reserves its place before the password is
hashed (accounts.guesses): parallel requests get no more answers heard than one by one.
"""

from __future__ import annotations

import base64
import io
import logging
from typing import Any

import qrcode
import qrcode.image.svg
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods
from django_otp import devices_for_user
from django_otp.plugins.otp_totp.models import TOTPDevice

import audit
from accounts import guesses
from accounts.models import User
from audit.services import record_capped
from core import stepup

logger = logging.getLogger(__name__)

_GUESSES = "step_up"


def totp_devices(user: User) -> list[Any]:
    return list(devices_for_user(user, confirmed=True))


def needs_totp(user: User) -> bool:
    """Whether this person's role requires an authenticator app to step up."""
    groups = set(settings.STEP_UP_TOTP_GROUPS)
    return bool(groups) and user.groups.filter(name__in=groups).exists()


class StepUpForm(forms.Form):
    password = forms.CharField(
        strip=False,
        max_length=4096,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )
    otp_token = forms.CharField(
        label="Code from your authenticator app",
        required=False,
        max_length=12,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "size": 8}
        ),
    )

    def __init__(self, *args: Any, user: User, devices: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.devices = devices
        self.method = "password"
        if not devices:
            del self.fields["otp_token"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        password = data.get("password") or ""
        if "\x00" in password or not self.user.check_password(password):
            raise forms.ValidationError("That is not your password.", code="password")
        if self.devices:
            token = (data.get("otp_token") or "").replace(" ", "")
            if not (token.isascii() and token.isdigit()) or not any(
                device.verify_token(token) for device in self.devices
            ):
                raise forms.ValidationError(
                    "That code is not valid (or was already used).", code="otp"
                )
            self.method = "password+totp"
        return data


def _signed_out(request: HttpRequest, failures: int, *, heard: bool) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]  # login_required
    guesses.sign_out(request, user, failures, heard=heard, action="accounts.step_up.signed_out")
    messages.error(request, "Too many wrong answers: you were signed out. Sign in again.")
    return HttpResponseRedirect(reverse("admin:login"))


def _fail(request: HttpRequest, attempt: guesses.Attempt, reason: str) -> HttpResponse | None:
    """Count a wrong answer (its place is ``attempt``'s); when it uses up the window
    sign the person out. Returns the response that ends the session, if it ended."""
    user: User = request.user  # type: ignore[assignment]  # login_required
    record_capped(
        "accounts.step_up.failed",
        category=audit.Category.SECURITY,
        actor=user,
        data={"reason": reason, "failures_in_window": attempt.failures},
    )
    if not attempt.last:
        return None
    return _signed_out(request, attempt.failures, heard=True)


def _reserve(request: HttpRequest) -> guesses.Attempt | HttpResponse:
    """A place for one password check, or the response refusing it unheard (the
    window is used up: sign out; the counter is unreachable: say so)."""
    try:
        attempt = guesses.Attempt(_GUESSES, request.user.pk)
    except guesses.Unavailable:
        messages.error(request, "Your password cannot be checked just now: try again in a minute.")
        return HttpResponseRedirect(request.get_full_path())
    if not attempt.allowed:
        return _signed_out(request, attempt.failures, heard=False)
    return attempt


@never_cache
@sensitive_post_parameters("password", "otp_token")
@login_required(login_url="admin:login")
@require_http_methods(["GET", "POST"])
def step_up(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    next_url = stepup.safe_next(request, request.POST.get("next") or request.GET.get("next"))
    devices = totp_devices(user)
    blocked = needs_totp(user) and not devices
    form = StepUpForm(
        request.POST if request.method == "POST" and not blocked else None,
        user=user,
        devices=devices,
    )
    if request.method == "POST" and not blocked:
        attempt = _reserve(request)
        if isinstance(attempt, HttpResponse):
            return attempt
        if form.is_valid():
            attempt.succeeded()
            # A new session id for the new privilege (as at sign-in): an id seen before
            # the step-up, in a log or over a shoulder, cannot use it. The data stays.
            request.session.cycle_key()
            stepup.mark_stepped_up(request, method=form.method)
            audit.record(
                "accounts.step_up.succeeded",
                category=audit.Category.SECURITY,
                actor=user,
                target=user,
                data={"method": form.method, "next": next_url[:200]},
            )
            return HttpResponseRedirect(next_url)
        codes = {error.code for error in form.non_field_errors().as_data()}
        signed_out = _fail(request, attempt, "otp" if codes == {"otp"} else "password")
        if signed_out is not None:
            return signed_out
    return render(
        request,
        "accounts/step_up.html",
        {
            "form": form,
            "next": next_url,
            "blocked": blocked,
            "max_age_minutes": max(1, settings.STEP_UP_MAX_AGE_SECONDS // 60),
            "title": "Confirm it is you",
            "has_permission": user.is_staff,
            "site_header": "Slotpay back-office",
            "site_title": "Slotpay",
        },
    )


# --- Enrolling an authenticator app ----------------------------------------------------


class EnrolStartForm(forms.Form):
    password = forms.CharField(
        strip=False, max_length=4096, widget=forms.PasswordInput(attrs={"autofocus": True})
    )


class EnrolConfirmForm(forms.Form):
    otp_token = forms.CharField(label="Code shown by the app", max_length=12)


def _qr_svg(uri: str) -> SafeString:
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buffer = io.BytesIO()
    image.save(buffer)
    return format_html(
        '<img alt="QR code for your authenticator app" src="data:image/svg+xml;base64,{}">',
        base64.b64encode(buffer.getvalue()).decode(),
    )


def _pending_device(user: User) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()


@never_cache
@sensitive_post_parameters("password", "otp_token")
@login_required(login_url="admin:login")
@require_http_methods(["GET", "POST"])
def two_factor(request: HttpRequest) -> HttpResponse:
    """Staff add an authenticator app: password first (enrolling is a security
    change), then the QR code, then a code from the app confirms it."""
    user: User = request.user  # type: ignore[assignment]
    if not user.is_staff:
        return HttpResponseRedirect(reverse("bookings:mine"))
    start, confirm = EnrolStartForm(), EnrolConfirmForm()
    pending = _pending_device(user)
    enrolled = totp_devices(user)
    # One app per person: replacing it is a superuser's removal first (a lost phone).
    if request.method == "POST" and request.POST.get("step") == "start" and not enrolled:
        start = EnrolStartForm(request.POST)
        attempt = _reserve(request)
        if isinstance(attempt, HttpResponse):
            return attempt
        if start.is_valid() and user.check_password(start.cleaned_data["password"]):
            attempt.succeeded()
            TOTPDevice.objects.filter(user=user, confirmed=False).delete()
            pending = TOTPDevice.objects.create(
                user=user, name="Authenticator app", confirmed=False
            )
            audit.record(
                "accounts.totp.enrolment_started",
                category=audit.Category.SECURITY,
                actor=user,
                target=user,
            )
            return HttpResponseRedirect(request.path)
        start.add_error(None, "That is not your password.")
        signed_out = _fail(request, attempt, "password")
        if signed_out is not None:
            return signed_out
    elif request.method == "POST" and request.POST.get("step") == "confirm" and pending:
        confirm = EnrolConfirmForm(request.POST)
        token = request.POST.get("otp_token", "").replace(" ", "")
        if token.isascii() and token.isdigit() and pending.verify_token(token):
            pending.confirmed = True
            pending.save(update_fields=["confirmed"])
            audit.record(
                "accounts.totp.enrolled",
                category=audit.Category.SECURITY,
                actor=user,
                target=user,
                data={"device": pending.pk},
            )
            messages.success(request, "Your authenticator app is set up.")
            return HttpResponseRedirect(request.path)
        confirm.add_error("otp_token", "That code does not match. Try the next one.")
    return render(
        request,
        "accounts/two_factor.html",
        {
            "title": "Authenticator app",
            "enrolled": totp_devices(user),
            "pending": pending,
            "qr": _qr_svg(pending.config_url) if pending else "",
            "secret": base64.b32encode(pending.bin_key).decode() if pending else "",
            "start": start,
            "confirm": confirm,
            "required": needs_totp(user),
            "has_permission": True,
            "site_header": "Slotpay back-office",
            "site_title": "Slotpay",
        },
    )
