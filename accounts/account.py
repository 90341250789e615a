"""The account page: profile, password, API tokens, recent sign-ins, data requests,
and for a builder's owners, invitations of new members.

A new email address is verified again (booking waits until it is), needs the current
password, and the former address is told of the change.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST, require_safe

import audit
from accounts import emails, links
from accounts.forms import InviteMemberForm, ProfileForm
from accounts.models import BuilderMembership, OneTimeLink, SignIn, User
from accounts.signup import email_verification_send

RECENT_SIGN_INS = 10


def account_page(
    request: HttpRequest,
    *,
    profile_form: ProfileForm | None = None,
    password_form: Any = None,
    status: int = 200,
) -> HttpResponse:
    from accounts.passwords import ChangeForm

    user = User.objects.get(pk=cast(int, request.user.pk))
    owned = [
        membership.builder
        for membership in BuilderMembership.objects.filter(
            user=user, role=BuilderMembership.Role.OWNER, builder__is_active=True
        ).select_related("builder")
    ]
    response = render(
        request,
        "accounts/account.html",
        {
            "account": user,
            "profile_form": profile_form or ProfileForm(instance=user),
            "password_form": password_form or ChangeForm(user),
            "sign_ins": SignIn.objects.filter(user=user)[:RECENT_SIGN_INS],
            "owned_builders": owned,
            "invite_form": InviteMemberForm(roles=[BuilderMembership.Role.MEMBER]),
        },
        status=status,
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@never_cache
@require_safe
def account(request: HttpRequest) -> HttpResponse:
    return account_page(request)


def user_profile_update(*, user: User, form: ProfileForm) -> bool:
    """Save the profile; True when the email changed (and must be verified again)."""
    changed = [name for name in form.changed_data if name != "current_password"]
    if not changed:
        return False
    email_changed = form.email_changed()
    former = form.former_email
    with transaction.atomic():
        updated = form.save(commit=False)
        if email_changed:
            updated.email_verified_at = None
        updated.save()
        personal: dict[str, Any] = {}
        if email_changed:
            personal["email"] = {"from": former, "to": updated.email}
            links.revoke(user=updated, purpose=OneTimeLink.Purpose.VERIFY_EMAIL)
            links.revoke(user=updated, purpose=OneTimeLink.Purpose.RESET_PASSWORD)
            links.revoke(user=updated, purpose=OneTimeLink.Purpose.RECOVER_SESSION)
        if "name" in changed:
            personal["name"] = {"from": form.initial.get("name", ""), "to": updated.name}
        audit.record(
            "accounts.user.changed",
            category=audit.Category.SECURITY,
            actor=updated,
            target=updated,
            data={"fields": sorted(changed), "via": "account_page"},
            personal_data=personal or None,
        )
        if email_changed:
            email_verification_send(user=updated, resent=False)
            emails.send("email_changed", address=former)
    return email_changed


@login_required
@sensitive_post_parameters("current_password")
@require_POST
def profile(request: HttpRequest) -> HttpResponse:
    user = User.objects.get(pk=cast(int, request.user.pk))
    form = ProfileForm(request.POST, instance=user)
    if not form.is_valid():
        return account_page(request, profile_form=form, status=400)
    if user_profile_update(user=user, form=form):
        messages.success(
            request,
            "Your email address was changed. Follow the link we sent to it to verify it: "
            "until then you cannot book.",
        )
    else:
        messages.success(request, "Your profile was saved.")
    return HttpResponseRedirect(reverse("accounts:account"))
