"""Sign-up, email verification, and invitations to join a builder.

A client signs up with an email, a name and a password, and is signed in unverified:
they may browse, not book (bookings.services.can_book), until they follow the link
emailed to them. The link works once, until EMAIL_VERIFICATION_MAX_AGE_HOURS, and only
for the address it was sent to; following it shows a button that verifies (a mail
scanner that opens the link spends nothing) and signs nobody in.

An address that already has an account gets the same "check your email" answer, and
that account's owner is told someone tried. (The new account is signed in and the
existing one is not: the session says what the page does not. The rate limits bound
how far that can be used to test addresses.)

A builder's member signs up by invitation only: a superuser (in the admin, stepped
up) or an owner of the builder invites an address; the link (7 days, once) lets its
holder sign up with that address, or sign in to the account that has it, and join. A
member sees the builder's clients and refunds them in full, so a staff account is
never one: an address of a staff account cannot be invited, and a staff account cannot
accept (both refused and audited).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn, cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.hashers import make_password
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

import audit
from accounts import emails, links, rights
from accounts.forms import InviteMemberForm, SignUpForm
from accounts.models import Builder, BuilderMembership, OneTimeLink, User
from audit.models import AuditEntry
from audit.services import record_capped
from core.encryption import blind_indexes

Purpose = OneTimeLink.Purpose
BACKEND = "accounts.backends.EmailBackend"


# --- Services ---------------------------------------------------------------------------


def user_sign_up(
    *, email: str, name: str, password: str, time_zone: str = "", verified: bool = False
) -> User | None:
    """The new, unverified account, with its verification email on its way; None when
    the address has an account already (whose owner is told instead). Both cost a
    password hash. ``verified``: the address was proven otherwise (an invitation)."""
    if User.objects.email_taken(email):
        _address_taken(email=email, password=password)
        return None
    try:
        with transaction.atomic():
            user = User.objects.create_user(
                email=email,
                password=password,
                name=name,
                time_zone=time_zone,
                email_verified_at=timezone.now() if verified else None,
            )
            audit.record(
                "accounts.signup.completed",
                category=audit.Category.SECURITY,
                actor=user,
                target=user,
                data={"verified": verified},
            )
            if not verified:
                email_verification_send(user=user, resent=False)
            return user
    except IntegrityError:
        # The same address signed up at the same moment (the unique index refused it).
        if not User.objects.email_taken(email):
            raise
    _address_taken(email=email, password=password)
    return None


# One "someone tried to sign up with your address" email per account per this long:
# the form must not be a way to fill someone's inbox.
ATTEMPT_NOTICE_INTERVAL = timedelta(hours=1)


def _address_taken(*, email: str, password: str) -> None:
    """Tell the account's owner someone tried (once an hour at most)."""
    make_password(password)  # what creating the account would have cost
    existing = User.objects.filter(email_index__in=blind_indexes(email)).first()
    if existing is None:
        return
    with transaction.atomic():
        # Capped: anyone can try any address, as often as the rate limits allow. Past
        # the cap (a flood) nobody is emailed.
        count = record_capped(
            "accounts.signup.address_taken",
            category=audit.Category.SECURITY,
            actor=None,
            data={"user": existing.pk},
        )
        earlier = AuditEntry.objects.filter(
            action="accounts.signup.address_taken",
            data__user=existing.pk,
            created_at__gte=timezone.now() - ATTEMPT_NOTICE_INTERVAL,
        ).count()
        if count <= settings.SECURITY_EVENT_AUDIT_LIMIT and earlier <= 1:
            emails.send("signup_attempt", user=existing)


def email_verification_send(*, user: User, resent: bool) -> None:
    """Email a new link (the earlier ones stop working). A resend is capped: a person
    can press the button as often as the rate limits allow."""
    emails.send("verify_email", user=user)
    if resent:
        record_capped(
            "accounts.email.verification_resent",
            category=audit.Category.SECURITY,
            actor=user,
            data={"user": user.pk},
        )
    else:
        audit.record(
            "accounts.email.verification_sent",
            category=audit.Category.SECURITY,
            actor=user,
            target=user,
        )


@dataclass(frozen=True)
class Verification:
    ok: bool
    user: User | None = None
    reason: str = ""


def email_verify(*, secret: str) -> Verification:
    """Spend a verification link; verified only if the account still has the address
    the link was sent to."""
    with transaction.atomic():
        link = links.spend(secret, Purpose.VERIFY_EMAIL)
        if link is None or link.user_id is None:
            return Verification(ok=False, reason="invalid")
        user = User.objects.select_for_update().get(pk=link.user_id)
        if not user.is_active:
            return Verification(ok=False, reason="invalid")
        if link.email_index not in blind_indexes(user.email):
            audit.record(
                "accounts.email.verification_refused",
                category=audit.Category.SECURITY,
                actor=None,
                target=user,
                data={"reason": "address_changed"},
            )
            return Verification(ok=False, user=user, reason="address_changed")
        if user.email_verified_at is None:
            user.email_verified_at = timezone.now()
            user.save(update_fields=["email_verified_at"])
        links.revoke(user=user, purpose=Purpose.VERIFY_EMAIL)
        audit.record(
            "accounts.email.verified", category=audit.Category.SECURITY, actor=user, target=user
        )
        return Verification(ok=True, user=user)


class InvitationRefused(Exception):  # noqa: N818 (the outcome the page shows)
    """An invitation that must not be sent or accepted; the message is for the person."""


STAFF_ADDRESS_REFUSED = (
    "This address belongs to a Slotpay staff account, which cannot join a builder: "
    "invite the person's own, non-staff address."
)
STAFF_ACCOUNT_REFUSED = (
    "A staff account cannot join a builder: a member sees the builder's clients and "
    "refunds them. Accept with a separate, non-staff account that has the invited address."
)


def may_invite(actor: Any, builder: Builder) -> list[str]:
    """The roles ``actor`` may invite to ``builder``: any, for a superuser; members
    only, for the builder's owners (never staff: see the module's docstring); none
    otherwise. No group permission grants it: a member sees the builder's clients and
    refunds them, and staff who may invite could invite themselves as owners."""
    if not getattr(actor, "is_authenticated", False) or not actor.is_active:
        return []
    if actor.is_superuser:
        return list(BuilderMembership.Role.values)
    if (
        not rights.is_staff_account(actor)
        and BuilderMembership.objects.filter(
            builder=builder, user=actor, role=BuilderMembership.Role.OWNER
        ).exists()
    ):
        return [BuilderMembership.Role.MEMBER]
    return []


def member_invite(*, actor: User, builder: Builder, email: str, role: str) -> None:
    """Email ``email`` an invitation to join ``builder`` as ``role``. Raises
    InvitationRefused (audited) for the address of a staff account."""
    if role not in may_invite(actor, builder):
        raise PermissionDenied("You cannot invite members to this builder.")
    invitee = User.objects.filter(email_index__in=blind_indexes(email)).first()
    if invitee is not None and rights.is_staff_account(invitee):
        # Capped: an owner can press the button as often as the rate limits allow.
        record_capped(
            "accounts.invitation.refused",
            category=audit.Category.SECURITY,
            actor=actor,
            data={
                "reason": "staff_address",
                "builder": builder.pk,
                "role": role,
                "user": invitee.pk,
            },
            personal_data={"email": email},
        )
        raise InvitationRefused(STAFF_ADDRESS_REFUSED)
    with transaction.atomic():
        audit.record(
            "accounts.invitation.sent",
            category=audit.Category.SECURITY,
            actor=actor,
            target=builder,
            data={"role": role},
            personal_data={"email": email},
        )
        emails.send("invite_member", address=email, builder=builder.pk, role=role)


def invitation_accept(*, secret: str, user: User) -> BuilderMembership | None:
    """Spend the invitation and make ``user`` a member; None if the link is not live
    or was sent to another address. Following it proves the address. Raises
    InvitationRefused (audited, the link left unspent) for a staff account."""
    if rights.is_staff_account(user):
        live = _live_invitation(secret, user)
        if live is not None:
            _staff_acceptance_refused(user=user, builder=live[1])
        return None
    with transaction.atomic():
        live = _live_invitation(secret, user)
        if live is None or links.spend(secret, live[0].purpose) is None:
            return None
        _, builder, role = live
        membership, created = BuilderMembership.objects.get_or_create(
            builder=builder, user=user, defaults={"role": role}
        )
        if user.email_verified_at is None:
            user.email_verified_at = timezone.now()
            user.save(update_fields=["email_verified_at"])
        audit.record(
            "accounts.invitation.accepted",
            category=audit.Category.SECURITY,
            actor=user,
            target=builder,
            data={"role": membership.role, "already_member": not created, "user": user.pk},
        )
        return membership


def _live_invitation(secret: str, user: User) -> tuple[OneTimeLink, Builder, str] | None:
    """The live invitation ``secret`` names, its active builder and role, if it was sent
    to ``user``'s address."""
    link = links.peek(secret, Purpose.INVITE_BUILDER_MEMBER)
    if link is None or link.email_index not in blind_indexes(user.email):
        return None
    parsed = emails.parse_invitation_target(link.target)
    builder = Builder.objects.filter(pk=parsed[0], is_active=True).first() if parsed else None
    if parsed is None or builder is None:
        return None
    return link, builder, parsed[1]


def _staff_acceptance_refused(*, user: User, builder: Builder) -> NoReturn:
    """Audit the refusal and raise it. The link stays live: the person may accept with
    a non-staff account that has the address (after the staff one gives it up)."""
    audit.record(
        "accounts.invitation.refused",
        category=audit.Category.SECURITY,
        actor=user,
        target=builder,
        data={"reason": "staff_account", "user": user.pk},
    )
    raise InvitationRefused(STAFF_ACCOUNT_REFUSED)


# --- Views ------------------------------------------------------------------------------


@never_cache
@sensitive_post_parameters("password1", "password2")
@require_http_methods(["GET", "HEAD", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return HttpResponseRedirect(reverse("accounts:account"))
    form = SignUpForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        user = user_sign_up(
            email=data["email"],
            name=data["name"],
            password=data["password1"],
            time_zone=data.get("time_zone") or "",
        )
        if user is not None:
            login(request, user, backend=BACKEND)
            target = _safe_next(request)
            if target:
                # Back to where sign-up was asked for (a claim, a session's page).
                messages.success(
                    request,
                    "Your account is ready. We emailed you a link to verify your address.",
                )
                return HttpResponseRedirect(target)
        return HttpResponseRedirect(reverse("accounts:signup_done"))
    return render(
        request,
        "accounts/signup.html",
        {"form": form, "next": _safe_next(request)},
        status=400 if form.is_bound else 200,
    )


def _safe_next(request: HttpRequest) -> str:
    """The ``next`` given to the sign-up page, if it is a page of this site."""
    target = request.POST.get("next") or request.GET.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return ""


@require_http_methods(["GET", "HEAD"])
def signup_done(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "accounts/signup_done.html",
        {"hours": settings.EMAIL_VERIFICATION_MAX_AGE_HOURS},
    )


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def verify(request: HttpRequest, secret: str) -> HttpResponse:
    """GET shows a button (nothing is spent); POST verifies."""
    if request.method != "POST":
        live = links.peek(secret, Purpose.VERIFY_EMAIL) is not None
        return render(request, "accounts/verify.html", {"live": live}, status=200 if live else 410)
    outcome = email_verify(secret=secret)
    if outcome.ok:
        return render(request, "accounts/verified.html")
    return render(
        request,
        "accounts/verify.html",
        {"live": False, "reason": outcome.reason},
        status=410,
    )


@login_required
@require_POST
def verify_resend(request: HttpRequest) -> HttpResponse:
    user = User.objects.get(pk=cast(int, request.user.pk))
    if user.email_verified_at is not None:
        messages.info(request, "Your email address is already verified.")
    else:
        email_verification_send(user=user, resent=True)
        messages.success(
            request,
            "We sent a new link to your email address. Follow it to verify your address "
            "(the link works once).",
        )
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("accounts:account")
    return HttpResponseRedirect(target)


def _invitation_invalid(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/link_invalid.html", {"what": "invitation"}, status=410)


class _LinkGoneError(Exception):
    """The invitation was spent between the page and the form: undo the sign-up."""


@never_cache
@sensitive_post_parameters("password1", "password2")
@require_http_methods(["GET", "HEAD", "POST"])
def invitation(request: HttpRequest, secret: str) -> HttpResponse:
    """Join a builder: signed in with the invited address, one button; signed out, a
    sign-in link or a sign-up form for the invited address."""
    link = links.peek(secret, Purpose.INVITE_BUILDER_MEMBER)
    parsed = emails.parse_invitation_target(link.target) if link is not None else None
    builder = Builder.objects.filter(pk=parsed[0], is_active=True).first() if parsed else None
    if link is None or parsed is None or builder is None:
        return _invitation_invalid(request)
    context: dict[str, Any] = {
        "builder": builder,
        "role": BuilderMembership.Role(parsed[1]).label.lower(),
        "secret": secret,
    }
    if request.user.is_authenticated:
        return _invitation_signed_in(request, link, context)
    return _invitation_sign_up(request, link, context)


def _invitation_signed_in(
    request: HttpRequest, link: OneTimeLink, context: dict[str, Any]
) -> HttpResponse:
    user = User.objects.get(pk=cast(int, request.user.pk))
    matches = link.email_index in blind_indexes(user.email)
    context["other_address"] = not matches
    if matches and rights.is_staff_account(user):
        # Said on the page at once; refused (and audited) if submitted all the same.
        context["refused"] = STAFF_ACCOUNT_REFUSED
    if request.method == "POST" and matches:
        try:
            joined = invitation_accept(secret=context["secret"], user=user)
        except InvitationRefused as exc:
            context["refused"] = str(exc)
            # 200, not 403: Django logs every 4xx with its path, which holds a live link.
            return render(request, "accounts/invitation.html", context)
        if joined is None:
            return _invitation_invalid(request)
        messages.success(request, f"You are now a member of {context['builder'].name}.")
        return HttpResponseRedirect(reverse("bookings:builder_bookings"))
    return render(request, "accounts/invitation.html", context)


def _invitation_sign_up(
    request: HttpRequest, link: OneTimeLink, context: dict[str, Any]
) -> HttpResponse:
    """The invitee's new account, verified (the link proves the address), a member."""
    form = SignUpForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if link.email_index not in blind_indexes(data["email"]):
            form.add_error("email", "Use the address the invitation was sent to.")
        elif User.objects.email_taken(data["email"]):
            form.add_error("email", "This address has an account: sign in to accept.")
        else:
            try:
                with transaction.atomic():
                    created = user_sign_up(
                        email=data["email"],
                        name=data["name"],
                        password=data["password1"],
                        time_zone=data.get("time_zone") or "",
                        verified=True,
                    )
                    if created is None or not invitation_accept(
                        secret=context["secret"], user=created
                    ):
                        raise _LinkGoneError
            except _LinkGoneError:
                return _invitation_invalid(request)
            login(request, created, backend=BACKEND)
            messages.success(
                request, f"Welcome: you are now a member of {context['builder'].name}."
            )
            return HttpResponseRedirect(reverse("bookings:builder_bookings"))
    context["form"] = form
    # 200 with the form's errors, not 400: Django logs every 4xx with its path, and
    # this path holds a live link.
    return render(request, "accounts/invitation.html", context)


@login_required
@require_POST
def invite_member(request: HttpRequest, slug: str) -> HttpResponse:
    """An owner's invitation, from the account page. Staff (superusers) invite from
    the admin, where it needs a fresh step-up: never here, without one."""
    builder = get_object_or_404(Builder, slug=slug, is_active=True)
    roles = [] if rights.is_staff_account(request.user) else may_invite(request.user, builder)
    if not roles:
        # Another tenant's builder reads as one that does not exist.
        raise Http404("No such builder.")
    form = InviteMemberForm(request.POST, roles=roles)
    if form.is_valid():
        try:
            member_invite(
                actor=request.user,  # type: ignore[arg-type]
                builder=builder,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
            )
        except InvitationRefused as exc:
            messages.error(request, str(exc))
        else:
            days = emails.INVITATION_MAX_AGE.days
            messages.success(request, f"Invitation sent. The link works once, for {days} days.")
    else:
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
    return HttpResponseRedirect(reverse("accounts:account"))
