"""Bookings made straight on Calendly, claimed by the person who made them.

Anyone can open a builder's Calendly page without coming through Slotpay. Such a
booking has no client (no booking intent names one), so :func:`claim_offer` emails the
address Calendly gives a single-use link (``accounts.links``, purpose CLAIM_BOOKING,
keyed by the booking's reference) that lives as long as the payment hold. Whoever
follows it signs in or signs up **with that address**, agrees to the refund policy and
pays (:func:`booking_claim`); unpaid, the booking is released with the hold like any
other (``services.expire_overdue``), and Calendly tells the invitee why.

Why an account with that address, and only that one: the link proves control of the
mailbox it was sent to, nothing more, so it may only hand the booking to the account
that address belongs to. For the same reason, claiming marks that account's email
verified when it was not yet: following a secret delivered to the address is exactly
what the verification link proves (the comparison is on the blind index of the address
the link was sent to, under a lock on the account row, so an address changed meanwhile
does not pass). Another account is refused with a clear message and audited as a
security event.

Staff may hand an unclaimed booking to an existing client by hand from the admin
(:func:`claim_send_to_client`): the client then gets a link bound to their own account.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

import audit
from accounts import links
from accounts.models import OneTimeLink, User
from audit.services import record_capped
from bookings import notify, services
from bookings.models import Booking, PolicyConsent
from core.encryption import blind_indexes

logger = logging.getLogger(__name__)

PURPOSE = OneTimeLink.Purpose.CLAIM_BOOKING
# The query parameter the emailed link carries its secret in: query values are
# masked in our logs, unlike paths (config/logging.py).
PARAM = "t"

EXPIRED = (
    "This link has expired or was used already. A booking that was not paid within "
    "the hold is released on Calendly; one you paid is under My bookings."
)


class ClaimRefused(Exception):  # noqa: N818 (the outcome the page shows)
    """The booking cannot be claimed by this person now; the message says why."""


class WrongAccount(ClaimRefused):
    """Signed in with an account whose address is not the one the link went to."""


@dataclass(frozen=True)
class Claim:
    """A live claim link and the booking it is for."""

    link: OneTimeLink
    booking: Booking

    @property
    def ends_at(self) -> datetime:
        return services.hold_ends_at(self.booking)


def claim_url(secret: str) -> str:
    return f"{settings.SITE_URL}{reverse('bookings:claim')}?{urlencode({PARAM: secret})}"


def _claimable(booking: Booking, *, for_user: User | None = None) -> bool:
    """Awaiting payment within its hold, and nobody's yet (or ``for_user``'s already:
    staff linked it to them)."""
    owner_ok = booking.client_id is None or (
        for_user is not None and booking.client_id == for_user.pk
    )
    return (
        owner_ok
        and booking.status == Booking.Status.PENDING_PAYMENT
        and timezone.now() < services.hold_ends_at(booking)
    )


def claim_offer(*, booking: Booking) -> bool:
    """Email the invitee of a booking nobody claimed the link to claim it, once (a
    repeated ``invitee.created`` sends nothing more). True if a link went out."""
    with transaction.atomic():
        booking = Booking.objects.select_for_update().get(pk=booking.pk)
        if not _claimable(booking) or not booking.invitee_email:
            return False
        if OneTimeLink.objects.filter(purpose=PURPOSE, target=str(booking.reference)).exists():
            return False
        until = services.hold_ends_at(booking)
        secret = links.issue(
            PURPOSE,
            max_age=until - timezone.now(),
            email=booking.invitee_email,
            target=str(booking.reference),
        )
        notify.claim_link(booking, claim_url(secret), until=until, to=booking.invitee_email)
        audit.record(
            "bookings.claim.offered",
            category=audit.Category.TRANSACTION,
            actor=services.ACTOR,
            target=booking,
            data={"until": until.isoformat()},
        )
    return True


def claim_send_to_client(*, booking: Booking, client: User, actor: User) -> datetime:
    """Staff hand an unclaimed booking to an existing client: the client gets a claim
    link bound to their account (any earlier link for the booking stops working), to
    agree to the policy and pay within the same hold. Returns when it expires."""
    if not client.is_active or client.is_staff:
        raise ClaimRefused("That account cannot book sessions.")
    with transaction.atomic():
        booking = Booking.objects.select_for_update().get(pk=booking.pk)
        if not _claimable(booking):
            raise ClaimRefused(
                "Only a booking that nobody claimed, awaiting payment within its hold, "
                "can be sent to a client."
            )
        OneTimeLink.objects.filter(
            purpose=PURPOSE, target=str(booking.reference), used_at__isnull=True
        ).update(expires_at=timezone.now())
        until = services.hold_ends_at(booking)
        secret = links.issue(
            PURPOSE,
            max_age=until - timezone.now(),
            user=client,
            email=client.email,
            target=str(booking.reference),
        )
        notify.claim_link(booking, claim_url(secret), until=until, to=client.email)
        audit.record(
            "bookings.claim.sent_to_client",
            category=audit.Category.TRANSACTION,
            actor=actor,
            target=booking,
            data={"client": client.pk, "until": until.isoformat()},
        )
    return until


def claim_find(secret: object) -> Claim | None:
    """The live claim link with this secret and its booking, if it can still be
    claimed; None for anything else (unknown, spent, expired, released, paid)."""
    link = links.peek(secret, PURPOSE)
    if link is None:
        return None
    try:
        reference = UUID(link.target)
    except ValueError:
        return None
    booking = (
        Booking.objects.select_related("event_type", "builder").filter(reference=reference).first()
    )
    if booking is None or not _claimable(booking, for_user=link.user):
        return None
    return Claim(link=link, booking=booking)


def claim_is_for(claim: Claim, user: User) -> bool:
    """Whether ``user``'s account is the one the link may hand the booking to: the
    address it was sent to (under any blind-index key in use), and the account it was
    bound to when staff sent it."""
    if claim.link.user_id is not None and claim.link.user_id != user.pk:
        return False
    return claim.link.email_index in blind_indexes(user.email)


def claim_refuse_account(claim: Claim, user: User) -> None:
    """Audit a claim tried from the wrong account (capped: a link can be retried in a
    loop) and refuse it. The addresses stay out of the audit trail's ``data``."""
    record_capped(
        "bookings.claim.wrong_account",
        category=audit.Category.SECURITY,
        actor=user,
        data={"booking": claim.booking.pk, "link": claim.link.pk},
    )
    raise WrongAccount(
        "This link was sent to another email address than the one you are signed in "
        "with. Sign out, then sign in or create an account with the address the email "
        "came to."
    )


def booking_claim(*, secret: object, user: User, policy_version: str, ip: str | None) -> Booking:
    """``user`` claims the booking the link is for: the link is spent, the consent to
    the policy (as shown, ``policy_version``) recorded, the booking becomes theirs and
    their email is marked verified if it was not. One transaction: a refusal part-way
    spends nothing. Raises ClaimRefused (WrongAccount for another account)."""
    claim = claim_find(secret)
    if claim is None:
        raise ClaimRefused(EXPIRED)
    if not claim_is_for(claim, user):
        claim_refuse_account(claim, user)
    event_type = claim.booking.event_type
    if policy_version != str(event_type.refund_policy_version):
        raise ClaimRefused("The refund policy changed while you were reading it: read it again.")
    with transaction.atomic():
        account = User.objects.select_for_update().get(pk=user.pk)
        if not account.is_active or not claim_is_for(claim, account):
            raise ClaimRefused(EXPIRED)
        booking = Booking.objects.select_for_update().get(pk=claim.booking.pk)
        if not _claimable(booking, for_user=account):
            raise ClaimRefused(EXPIRED)
        if links.spend(secret, PURPOSE) is None:
            raise ClaimRefused(EXPIRED)  # spent by a concurrent click
        verified_now = account.email_verified_at is None
        if verified_now:
            account.email_verified_at = timezone.now()
            account.save(update_fields=["email_verified_at"])
            # The address is proved: a verification link still in the inbox is moot.
            links.revoke(user=account, purpose=OneTimeLink.Purpose.VERIFY_EMAIL)
            audit.record(
                "accounts.email.verified",
                category=audit.Category.SECURITY,
                actor=account,
                target=account,
                data={"via": "bookings.claim", "booking": booking.pk},
            )
        consent = services.consent_give(user=account, event_type=event_type, ip=ip)
        PolicyConsent.objects.filter(pk=consent.pk).update(booking=booking)
        previous_review = booking.review_reason
        booking.client = account
        booking.needs_review = False
        booking.review_reason = ""
        booking.save(update_fields=["client", "needs_review", "review_reason"])
        audit.record(
            "bookings.booking.claimed",
            category=audit.Category.TRANSACTION,
            actor=account,
            target=booking,
            data={
                "consent": consent.pk,
                "email_verified_now": verified_now,
                "was_flagged": previous_review,
                "sent_by_staff": claim.link.user_id is not None,
            },
        )
    logger.info("bookings.claim.claimed", extra={"booking": booking.pk})
    return booking
