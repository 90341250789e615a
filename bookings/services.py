"""Bookings from Calendly, and every way they move on.

One door per fact, each safe to go through twice and in any order:

- :func:`booking_record_invitee`: the redirect back and ``invitee.created`` both end
  here, keyed by the invitee's UUID, with the invitee as Calendly reports it now.
- :func:`invitee_canceled`: a cancellation on Calendly (or the cancel half of a
  reschedule, which moves the payment to the new booking instead of refunding).
- :func:`booking_cancel_by_client`: the client's cancel button: Calendly first (the
  slot is freed), then the booking, then the refund the policy gives.
- :func:`booking_cancel_for_client`: staff cancel for the client (the provider's
  fault), the same way, at once; the full refund is decided as any back-office
  refund (a second Finance member approves it above the threshold or beyond the
  agreed policy).
- :func:`booking_cancel_by_builder`: the builder calls a session off from Slotpay: as
  when the builder (Calendly's host) cancels on Calendly, everything is refunded at once.
- :func:`booking_mark_no_show_by_builder`: the client did not come (no refund).
- :func:`booking_refund_by_staff`: a refund from the back-office, with what the
  agreed policy gives now (:func:`refund_standing`) deciding whether it goes beyond it.
- :func:`booking_release_unpaid`: an unpaid booking past its hold, or whose payment
  failed or expired: the Checkout Session and the Calendly event are cancelled.
- :func:`booking_dispute`: Stripe reports a dispute: the payment is marked by
  ``payments``, the booking here (and given back its status when the dispute closes
  in our favour), and Finance is told.

Calls to Calendly and Stripe happen before our writes; refunds made here carry a
reference derived from the decision, so a second run finds the first refund.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn
from uuid import UUID

from django.conf import settings
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

import audit
from accounts.models import User
from accounts.validators import without_control_characters
from bookings import calendly, checkout, notify
from bookings.models import Booking, EventType, IllegalTransition, PolicyConsent, invitee_key
from bookings.policy import RefundPolicy
from core.actors import Actor
from core.encryption import normalize_email
from core.http import truncate_ip
from core.notify import staff_alert
from payments import stripe_gateway
from payments.models import Dispute, Payment, Refund, RefundApproval
from payments.services import (
    REASON_MAX,
    NotReady,
    RefundRefused,
    backoffice_reference,
    dispute_sync,
    payment_for_charge,
    reference_for,
    refund_propose,
    refund_request,
)

logger = logging.getLogger(__name__)

ACTOR = "bookings"
INTENT_SALT = "slotpay.bookings.intent"
# A booking intent's clock may be this far ahead of Calendly's.
CLOCK_SKEW = timedelta(minutes=5)
_PAGE_URL = URLValidator(schemes=["https", "http"])


def can_book(user: Any) -> bool:
    """The one rule for "may this account book": signed in, active, and its email
    address verified (an unverified account may browse; the page says why not)."""
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and user.email_verified_at is not None
    )


def must_verify_email(user: Any) -> bool:
    """Signed in and active, and only the email verification stands between it and a
    booking: the page offers to send the link again."""
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and user.email_verified_at is None
    )


# --- Consent and the booking intent ----------------------------------------------------


def consent_give(*, user: User, event_type: EventType, ip: str | None) -> PolicyConsent:
    """Record the client's agreement to the policy as shown (its version and tiers)."""
    with transaction.atomic():
        consent = PolicyConsent.objects.create(
            user=user,
            event_type=event_type,
            policy_version=event_type.refund_policy_version,
            policy=event_type.refund_policy,
            ip=truncate_ip(ip),
        )
        audit.record(
            "bookings.consent.given",
            category=audit.Category.TRANSACTION,
            actor=user,
            target=consent,
            data={"event_type": event_type.pk, "policy_version": consent.policy_version},
        )
    return consent


@dataclass(frozen=True)
class Intent:
    user_id: int
    event_type_id: int
    consent_id: int
    issued_at: datetime


def issue_intent(consent: PolicyConsent) -> str:
    """A signed, expiring token for ``utm_content``: who books what, under which consent.
    It names database ids only; no personal data goes to Calendly this way."""
    return signing.dumps(
        [consent.user_id, consent.event_type_id, consent.pk, int(consent.consented_at.timestamp())],
        salt=INTENT_SALT,
        compress=True,
    )


def read_intent(value: str | None, *, at: datetime) -> Intent | None:
    """The intent in ``value`` if it is ours, untampered and was fresh at ``at`` (when
    the invitee booked, by Calendly's clock: a webhook processed late still links)."""
    if not value:
        return None
    try:
        user_id, event_type_id, consent_id, issued = signing.loads(value, salt=INTENT_SALT)
        issued_at = datetime.fromtimestamp(int(issued), tz=UTC)
    except (signing.BadSignature, ValueError, TypeError, OverflowError):
        return None
    max_age = timedelta(minutes=settings.BOOKING_INTENT_MAX_AGE_MINUTES)
    if not issued_at - CLOCK_SKEW <= at <= issued_at + max_age:
        return None
    return Intent(int(user_id), int(event_type_id), int(consent_id), issued_at)


class NotLinked(Exception):  # noqa: N818 (why a booking has no client, for staff)
    pass


def _linked_consent(
    intent: Intent | None, event_type: EventType, *, email: str | None = None
) -> PolicyConsent:
    """The consent a booking intent names, or NotLinked saying why it cannot link.

    The intent rides in a URL anyone can copy, so it is bound to its client's email:
    a booking made with another person's address under it is left for staff, and no
    payment link goes to that address."""
    if intent is None:
        raise NotLinked("no valid booking intent: link it to a client")
    if intent.event_type_id != event_type.pk:
        raise NotLinked("the booking intent is for another session: link it to a client")
    consent = (
        PolicyConsent.objects.select_related("user")
        .filter(pk=intent.consent_id, user_id=intent.user_id, event_type=event_type)
        .first()
    )
    if consent is None or not can_book(consent.user):
        raise NotLinked("the booking intent's client cannot book: link it to a client")
    if consent.booking_id is not None:
        # One consent, one booking: a reused link is for staff to look at.
        raise NotLinked("the booking intent was used already: link it to a client")
    if email is not None and normalize_email(email) != normalize_email(consent.user.email):
        raise NotLinked(
            "booked with an email other than the client's who started it: check with both"
        )
    return consent


# --- Recording ---------------------------------------------------------------------------


def fetch_invitee(invitee_uri: str) -> tuple[calendly.Invitee, calendly.ScheduledEvent]:
    with calendly.CalendlyClient() as client:
        invitee = client.get_invitee_by_uri(invitee_uri)
        event = client.get_scheduled_event(invitee.event_uri or invitee.uri)
    return invitee, event


def event_type_for(event: calendly.ScheduledEvent) -> EventType | None:
    uuid = (
        calendly.uuid_from_uri(event.event_type_uri, "event_types") if event.event_type_uri else ""
    )
    if not uuid:
        return None
    return EventType.objects.filter(calendly_event_type_uri__endswith=f"/{uuid}").first()


def event_type_known(invitee: calendly.Invitee) -> bool:
    """Whether an invitee's event is one of our event types (asks Calendly)."""
    with calendly.CalendlyClient() as client:
        event = client.get_scheduled_event(invitee.event_uri or invitee.uri)
    return event_type_for(event) is not None


def booking_record_invitee(
    *, invitee: calendly.Invitee, event: calendly.ScheduledEvent, source: str
) -> Booking | None:
    """The booking for this invitee, created the first time (None: not our event type).

    Linked to its client through the booking intent in ``utm_content``; without a
    valid one it is kept and flagged for staff. A reschedule (``old_invitee``) takes
    over the earlier booking's client and payment. Raises NotReady when the earlier
    booking is not recorded yet.
    """
    event_type = event_type_for(event)
    if event_type is None:
        logger.info("bookings.invitee.not_ours", extra={"source": source})
        return None
    predecessor = None
    if invitee.old_invitee:
        predecessor = Booking.objects.for_invitee(invitee.old_invitee).first()
        if predecessor is None:
            raise NotReady("the booking this one reschedules is not recorded yet")
    booking = Booking.objects.for_invitee(invitee.uri).first()
    if booking is None:
        booking = _create(invitee, event, event_type, predecessor, source=source)
    elif not booking.calendly_cancel_url and invitee.cancel_url:
        # Recorded before Calendly's pages were kept: kept from now on.
        Booking.objects.filter(pk=booking.pk).update(
            calendly_cancel_url=_provider_page(invitee.cancel_url),
            calendly_reschedule_url=_provider_page(invitee.reschedule_url),
        )
    if predecessor is not None:
        _take_over(predecessor, booking)
    if invitee.status == "canceled" and not invitee.rescheduled:
        _apply_cancellation(booking, invitee)
    return Booking.objects.get(pk=booking.pk)


def _create(
    invitee: calendly.Invitee,
    event: calendly.ScheduledEvent,
    event_type: EventType,
    predecessor: Booking | None,
    *,
    source: str,
) -> Booking:
    consent = None
    if predecessor is not None:
        client, review = predecessor.client, predecessor.needs_review
        reason = predecessor.review_reason
    else:
        intent = read_intent(invitee.tracking.utm_content, at=invitee.created_at or timezone.now())
        try:
            consent = _linked_consent(intent, event_type, email=invitee.email)
        except NotLinked as exc:
            consent, reason = None, str(exc)
        else:
            reason = ""
        client = consent.user if consent else None
        # Booked straight on Calendly (no intent of ours): the invitee is emailed a link
        # to claim it (bookings.claims), nothing for staff. An intent that came but does
        # not fit (copied, reused, another session) is flagged for staff as well.
        review = consent is None and intent is not None
    answers = [
        {"question": qa.question, "answer": qa.answer} for qa in invitee.questions_and_answers
    ]
    with transaction.atomic():
        booking, created = Booking.objects.get_or_create(
            calendly_invitee_uuid=invitee_key(invitee.uri),
            defaults={
                "calendly_invitee_uri": invitee.uri,
                "client": client,
                "builder": event_type.builder,
                "event_type": event_type,
                "calendly_event_uri": event.uri,
                "start_at": event.start_time,
                "end_at": event.end_time,
                "invitee_time_zone": invitee.timezone or "UTC",
                # Shown to the builder as "Booked by": no direction overrides.
                "invitee_name": invitee.name and without_control_characters(invitee.name),
                "invitee_email": invitee.email,
                "answers": json.dumps(answers),
                "price_amount": event_type.price_amount,
                "currency": event_type.currency,
                "needs_review": review,
                "review_reason": reason if review else "",
                "calendly_cancel_url": _provider_page(invitee.cancel_url),
                "calendly_reschedule_url": _provider_page(invitee.reschedule_url),
            },
        )
        if created:
            if consent is not None:
                PolicyConsent.objects.filter(pk=consent.pk).update(booking=booking)
            audit.record(
                "bookings.booking.recorded",
                category=audit.Category.TRANSACTION,
                actor=ACTOR,
                target=booking,
                data={
                    "source": source,
                    "event_type": event_type.pk,
                    "linked": client is not None,
                    "flagged": review,
                    "rescheduled_from": predecessor.pk if predecessor else None,
                    "price": booking.price_amount,
                    "currency": booking.currency,
                },
            )
            if review:
                staff_alert(
                    f"Booking {booking.pk} needs a client",
                    [f"Booking {booking.pk} for {event_type.title}: {reason}."],
                    group="Support",
                )
    return booking


def _provider_page(url: str) -> str:
    """A page of Calendly's to link to, or blank: only an absolute http(s) URL that fits
    the column is ever put in a link (never ``javascript:``)."""
    try:
        _PAGE_URL(url)
    except ValidationError:
        return ""
    return url if len(url) <= 255 else ""


def _take_over(old: Booking, new: Booking) -> None:
    """A reschedule: the new booking takes the old one's payments (never a second
    charge). A paid booking becomes ``rescheduled``; an unpaid one ``expired``."""
    with transaction.atomic():
        old = Booking.objects.select_for_update().get(pk=old.pk)
        new = Booking.objects.select_for_update().get(pk=new.pk)
        if old.rescheduled_to_id == new.pk:
            return  # taken over already (Calendly sends a reschedule as two events)
        moved = list(old.payments.values_list("pk", flat=True))
        if moved:
            Payment.objects.filter(pk__in=moved).update(booking=new)
            audit.record(
                "payments.payment.moved",
                category=audit.Category.TRANSACTION,
                actor=ACTOR,
                target=new,
                data={"payments": moved, "from": old.pk, "to": new.pk},
            )
        PolicyConsent.objects.filter(booking=old).update(booking=new)
        if old.status == Booking.Status.CONFIRMED:
            new.confirm(actor=ACTOR)
            old.reschedule(new, actor=ACTOR)
        elif old.status == Booking.Status.PENDING_PAYMENT:
            old.transition(
                Booking.Status.EXPIRED,
                actor=ACTOR,
                reason=f"rescheduled to booking {new.pk} before payment",
                data={"successor": new.pk},
                fields={"rescheduled_to": new},
            )
        else:
            Booking.objects.filter(pk=new.pk).update(
                needs_review=True, review_reason=f"rescheduled from a {old.status} booking"
            )


# --- Cancellations -------------------------------------------------------------------------


def invitee_canceled(invitee: calendly.Invitee) -> Booking | None:
    """``invitee.canceled``, with the invitee as Calendly reports it now."""
    booking = Booking.objects.for_invitee(invitee.uri).first()
    if booking is None:
        raise NotReady("the canceled booking is not recorded yet")
    if invitee.rescheduled:
        if not invitee.new_invitee:
            raise NotReady("Calendly does not name the rescheduled booking yet")
        new_invitee, event = fetch_invitee(invitee.new_invitee)
        booking_record_invitee(invitee=new_invitee, event=event, source="reschedule")
        return Booking.objects.get(pk=booking.pk)
    if invitee.status != "canceled":
        return booking  # the payload said canceled; Calendly no longer does
    _apply_cancellation(booking, invitee)
    return Booking.objects.get(pk=booking.pk)


def _apply_cancellation(booking: Booking, invitee: calendly.Invitee) -> None:
    booking.refresh_from_db(
        fields=[
            "cancel_requested_by",
            "cancel_requested_at",
            "cancel_refund_full",
            "cancel_by_builder",
        ]
    )
    if booking.cancel_requested_at is not None:
        # Our client (or staff for them, or the builder) asked first and Calendly's
        # event overtook the request: the cancellation is theirs, at the time they asked.
        actor: Actor = booking.cancel_requested_by or ACTOR
        at, where = booking.cancel_requested_at, "canceled by the client"
        if booking.cancel_by_builder:
            where = BY_BUILDER
        elif booking.cancel_refund_full:
            where = "canceled for the client by staff"
    else:
        actor, where = ACTOR, "canceled on Calendly"
        at = (invitee.cancellation.created_at if invitee.cancellation else None) or timezone.now()
    # The builder (Calendly's host) called the session off: the client is not at fault
    # and gets everything back, whatever the policy says of late cancellations.
    by_host = (
        booking.cancel_requested_at is None
        and invitee.cancellation is not None
        and invitee.cancellation.canceler_type == "host"
    )
    if by_host:
        where = "canceled by the builder on Calendly (full refund)"
    if booking.status == Booking.Status.PENDING_PAYMENT:
        released = booking_release_unpaid(
            booking=booking, reason=f"{where} before payment", cancel_event=False, actor=actor
        )
        if released:
            return
        # Paid at Stripe after all, its webhook not here yet: the release settled the
        # payment and confirmed the booking, and the cancellation, made on Calendly, now
        # applies to a paid booking (its policy's refund), not to nothing.
        booking.refresh_from_db()
    if booking.status == Booking.Status.CONFIRMED:
        requester = booking.cancel_requested_by
        if _staff_asked_in_full(booking) and requester is not None:
            # Staff cancelled for the client: the same four-eyes decision as theirs;
            # cancellation, refund and email in one transaction (as below).
            with transaction.atomic():
                changed = booking.cancel(actor=requester, reason=where)
                outcome = _refund_in_full(
                    booking, actor=requester, note="Calendly reported it first"
                )
                if changed:
                    _notify_canceled(booking, outcome)
            return
        booking_refund_cancellation(
            booking=booking,
            at=at,
            actor=actor,
            reason=where,
            full=booking.cancel_refund_full or by_host,
        )


BY_BUILDER = "canceled by the builder on Slotpay (full refund)"


def _staff_asked_in_full(booking: Booking) -> bool:
    """Staff cancelled for the client (a full refund decided with four eyes), as
    opposed to the builder (a full refund made at once, as a host's on Calendly)."""
    return booking.cancel_refund_full and not booking.cancel_by_builder


def agreed_policy(booking: Booking) -> RefundPolicy:
    """The policy the client consented to (the event type's may have changed since)."""
    consent = booking.consents.order_by("-consented_at").first()
    return booking.event_type.policy if consent is None else RefundPolicy.from_json(consent.policy)


def policy_refund(
    booking: Booking, at: datetime, *, full: bool = False
) -> tuple[int, Payment | None]:
    """What cancelling at ``at`` gives back, under the policy the client agreed to
    (everything that remains with ``full``: the provider was at fault)."""
    payment = (
        booking.payments.filter(status__in=Payment.REFUNDABLE).order_by("paid_at", "pk").first()
    )
    if payment is None:
        return 0, None
    percent = 100 if full else refund_percent(booking, at)
    amount = min(payment.amount * percent // 100, payment.refundable())
    return amount, payment


def refund_percent(booking: Booking, at: datetime) -> int:
    """The share the agreed policy gives back for a cancellation at ``at``.

    A reschedule never raises it: each booking this one replaced counts at the moment
    it was rescheduled, so moving a session booked inside the no-refund window to next
    month and cancelling there refunds what cancelling the first would have.
    """
    policy = agreed_policy(booking)
    percent = policy.percent_at(booking.start_at, at)
    cap = reschedule_cap(booking, policy=policy)
    return percent if cap is None else min(percent, cap)


def reschedule_cap(booking: Booking, *, policy: RefundPolicy) -> int | None:
    """The most a rescheduled booking can give back under ``policy`` (the agreed one):
    what cancelling each booking it replaced would have given when it was moved
    (None: it replaced none)."""
    cap = None
    earlier = rescheduled_from(booking)
    while earlier is not None:
        then = policy.percent_at(earlier.start_at, earlier.status_changed_at)
        cap = then if cap is None else min(cap, then)
        earlier = rescheduled_from(earlier)
    return cap


def rescheduled_from(booking: Booking) -> Booking | None:
    """The paid booking this one replaced, if any (not one left unpaid)."""
    return Booking.objects.filter(rescheduled_to=booking, status=Booking.Status.RESCHEDULED).first()


def booking_refund_cancellation(
    *, booking: Booking, at: datetime, actor: Actor, reason: str, full: bool = False
) -> int:
    """Confirmed → canceled, and the policy's refund (once; all that remains with
    ``full``). Returns the amount, the same for a repeat or a concurrent second cancel
    as for the first."""
    reference = reference_for(f"cancel:{booking.reference}")
    amount, payment = policy_refund(booking, at, full=full)
    # One transaction: the cancellation, its refund and the client's email commit
    # together or not at all. Cancelled in a commit of its own, a failure before the
    # refund (a worker killed, a lock timeout) left a cancelled booking whose handler,
    # run again, found nothing left to do: no refund, no email. Stripe is called after
    # the commit (refund_request).
    with transaction.atomic():
        changed = booking.cancel(actor=actor, reason=reason)
        if amount > 0 and payment is not None:
            try:
                refund = refund_request(
                    booking_id=booking.pk,
                    amount=amount,
                    reason=f"Cancellation: {reason}",
                    actor=actor,
                    payment=payment,
                    reference=reference,
                )
            except RefundRefused:
                logger.warning("bookings.cancel.refund_refused", extra={"booking": booking.pk})
            else:
                amount = refund.amount
        else:
            # Refunded already by a cancel that went first: its amount is the answer.
            earlier = Refund.objects.filter(reference=reference).first()
            amount = earlier.amount if earlier is not None else amount
        if changed:
            notify.canceled(booking, amount, payment.currency if payment else booking.currency)
    return amount


class CancelRefused(Exception):  # noqa: N818 (the outcome the page shows)
    pass


def booking_cancel_by_client(*, booking: Booking, actor: Actor) -> int:
    """The client's cancel button. Returns the amount refunded (minor units).

    The request is recorded (who, when) before Calendly is told, and forgotten if
    Calendly cannot be reached: whichever of this request and Calendly's
    ``invitee.canceled`` gets there first, the cancellation is the client's, at the
    time they asked."""
    _refuse_unless_cancellable(booking)
    if booking.end_at <= timezone.now():
        raise CancelRefused("This session is over and can no longer be canceled.")
    return _cancel_as_asked(
        booking,
        actor=actor,
        by="the client",
        calendly_reason="Canceled by the client on Slotpay",
    )


CANCEL_FOR_CLIENT = "bookings.cancel_for_client"


def booking_cancel_for_client(
    *, booking: Booking, actor: User, reason: str
) -> Refund | RefundApproval | None:
    """Staff cancel for the client, the provider being at fault: the Calendly event and
    the booking are cancelled now, and everything paid is to be refunded, whatever the
    policy says. The refund is decided as any from the back-office
    (:func:`payments.services.refund_propose`): made now within the approval threshold
    and the agreed policy, else waiting for another Finance member's approval. Returns
    that refund or approval (None: nothing was paid); audited with the staff member and
    ``reason``.

    As for the client's own cancel, the request is recorded first, so Calendly's
    ``invitee.canceled`` arriving before this finishes is the same cancellation, with
    the same refund decision. Of concurrent requests only the first goes on: the
    others are refused (CancelRefused), and are not audited as a cancellation."""
    if not actor.has_perm(CANCEL_FOR_CLIENT):
        raise PermissionDenied("cancelling for the client needs bookings.cancel_for_client")
    reason = reason.strip()
    if not reason or len(reason) > REASON_MAX:
        raise CancelRefused(f"Give a reason (at most {REASON_MAX} characters).")
    if booking.status == Booking.Status.CANCELED:
        _canceled_already(booking, note=reason)
    _refuse_unless_cancellable(booking)
    asked_at, first = _note_cancel_request(booking, actor=actor, full=True, reason=reason)
    if not first:
        booking.refresh_from_db()
        if booking.status != Booking.Status.CANCELED:
            raise CancelRefused("This booking is being canceled already: reload in a moment.")
        _canceled_already(booking, note=reason)
    _cancel_calendly_or_forget(
        booking, asked_at, calendly_reason="Canceled on Slotpay: the session cannot take place"
    )
    booking.refresh_from_db()
    outcome: Refund | RefundApproval | None = None
    if booking.status == Booking.Status.PENDING_PAYMENT:
        booking_release_unpaid(
            booking=booking,
            reason="canceled by staff for the client before payment",
            cancel_event=False,
            actor=actor,
        )
    elif booking.status == Booking.Status.CONFIRMED:
        changed = booking.cancel(actor=actor, reason="canceled by staff for the client")
        outcome = _refund_in_full(booking, actor=actor, note=reason)
        if changed:
            _notify_canceled(booking, outcome)
    else:
        # Calendly's invitee.canceled overtook this request and applied it.
        outcome = _refund_in_full(booking, actor=actor, note=reason)
    audit.record(
        "bookings.booking.canceled_for_client",
        category=audit.Category.TRANSACTION,
        actor=actor,
        target=booking,
        data={
            "reason": reason,
            "refunded": outcome.amount if isinstance(outcome, Refund) else 0,
            "awaiting_approval": outcome.amount if isinstance(outcome, RefundApproval) else 0,
            "currency": booking.currency,
        },
    )
    return outcome


def _refuse_unless_member(booking: Booking, actor: User) -> None:
    """The selectors let only the builder's members reach these; checked again here so
    that no other caller can act for a builder it does not belong to."""
    if not booking.builder.memberships.filter(user=actor).exists():
        raise PermissionDenied("only the builder's members act for the builder")


def booking_cancel_by_builder(*, booking: Booking, actor: User) -> int:
    """The builder calls a session off from Slotpay, before it starts: the client is
    not at fault and gets everything back at once (as when the builder cancels on
    Calendly), whatever the policy says. Returns the amount refunded (minor units).

    As for the client's cancel, the request (who, when, full, by the builder) is
    recorded before Calendly is told, so Calendly's ``invitee.canceled`` arriving
    first is the same cancellation with the same full refund. Audited with the member
    as actor; the client is emailed."""
    _refuse_unless_member(booking, actor)
    _refuse_unless_cancellable(booking)
    if booking.start_at <= timezone.now():
        raise CancelRefused("This session has started: mark a no-show instead of canceling.")
    asked_at, first = _note_cancel_request(
        booking, actor=actor, full=True, by_builder=True, reason="canceled by the builder"
    )
    if not first:
        booking.refresh_from_db()
        if booking.status == Booking.Status.CANCELED:
            raise CancelRefused("This booking is canceled already.")
        raise CancelRefused("This booking is being canceled already: reload in a moment.")
    _cancel_calendly_or_forget(
        booking,
        asked_at,
        calendly_reason=f"Canceled by {booking.builder.name}: you get a full refund",
    )
    booking.refresh_from_db()
    amount = 0
    if booking.status == Booking.Status.PENDING_PAYMENT:
        released = booking_release_unpaid(
            booking=booking,
            reason="canceled by the builder before payment",
            cancel_event=False,
            actor=actor,
        )
        if released:
            notify.canceled(booking, 0, booking.currency, by_builder=True)
        # Not released: Stripe had taken the payment after all (its webhook lost), and
        # the booking is confirmed now: refunded in full below.
        booking.refresh_from_db()
    if booking.status == Booking.Status.CONFIRMED:
        amount = booking_refund_cancellation(
            booking=booking, at=asked_at, actor=actor, reason=BY_BUILDER, full=True
        )
    elif booking.status == Booking.Status.CANCELED:
        # Calendly's invitee.canceled overtook this request and applied it (in full).
        earlier = Refund.objects.filter(reference=reference_for(f"cancel:{booking.reference}"))
        amount = sum(earlier.values_list("amount", flat=True))
    audit.record(
        "bookings.booking.canceled_by_builder",
        category=audit.Category.TRANSACTION,
        actor=actor,
        target=booking,
        data={"builder": booking.builder_id, "refunded": amount, "currency": booking.currency},
    )
    return amount


class NoShowRefused(Exception):  # noqa: N818 (the outcome the page shows)
    pass


def booking_mark_no_show_by_builder(*, booking: Booking, actor: User) -> bool:
    """The builder marks that the client did not come, once the session has started:
    ``no_show`` (nothing refunded), audited with the member as actor, the client
    emailed. False when it was marked already."""
    _refuse_unless_member(booking, actor)
    if booking.start_at > timezone.now():
        raise NoShowRefused("This session has not started yet.")
    try:
        changed = booking.transition(
            Booking.Status.NO_SHOW, actor=actor, reason="marked by the builder"
        )
    except IllegalTransition:
        raise NoShowRefused(
            f"This booking is {booking.get_status_display().lower()}: it cannot be a no-show."
        ) from None
    if changed:
        notify.no_show(booking)
    return changed


def _canceled_already(booking: Booking, *, note: str) -> NoReturn:
    """Refuse a repeat. If the request that cancelled for the client stopped before its
    refund was decided (a crash, a lock given up), the decision is made now, for the
    member who asked first (not audited as a cancellation: this one cancelled nothing)."""
    requester = booking.cancel_requested_by
    if _staff_asked_in_full(booking) and requester is not None:
        _refund_in_full(booking, actor=requester, note=note)
    raise CancelRefused("This booking is canceled already.")


def _refund_in_full(booking: Booking, *, actor: User, note: str) -> Refund | RefundApproval | None:
    """Everything that remains of a booking cancelled for the client, decided as any
    back-office refund (four eyes above the threshold or beyond the agreed policy);
    the same decision however often it is taken (a webhook and the request both)."""
    reference = reference_for(f"cancel:{booking.reference}")
    earlier = (
        RefundApproval.objects.filter(reference=reference).first()
        or Refund.objects.filter(reference=reference).first()
    )
    if earlier is not None:
        return earlier
    payment = (
        booking.payments.filter(status__in=Payment.REFUNDABLE).order_by("paid_at", "pk").first()
    )
    if payment is None or payment.refundable() <= 0:
        return None
    when = booking.cancel_requested_at or timezone.now()
    try:
        return refund_propose(
            payment=payment,
            amount=payment.refundable(),
            reason=f"canceled for the client: {note}"[:REASON_MAX],
            actor=actor,
            policy_amount=payment.amount * refund_percent(booking, when) // 100,
            reference=reference,
            permission=None,  # cancelling for the client (checked by the caller) asks it
        )
    except RefundRefused as exc:
        # Taken meanwhile (a dispute, a refund at the same moment): Finance looks.
        logger.warning("bookings.cancel_for_client.refund_refused", extra={"booking": booking.pk})
        staff_alert(
            f"Booking {booking.pk} was canceled for the client; its full refund was refused",
            [str(exc), "Check its payments on the booking's refund page."],
        )
        return None


def _notify_canceled(booking: Booking, outcome: Refund | RefundApproval | None) -> None:
    """Tell the client: the full refund is due, made now or once approved."""
    if outcome is None:
        notify.canceled(booking, 0, booking.currency)
    else:
        notify.canceled(
            booking,
            outcome.amount,
            outcome.payment.currency,
            reviewed=isinstance(outcome, RefundApproval),
        )


def _refuse_unless_cancellable(booking: Booking) -> None:
    if booking.status not in (Booking.Status.CONFIRMED, Booking.Status.PENDING_PAYMENT):
        raise CancelRefused(f"This booking is {booking.get_status_display().lower()}.")


def _cancel_as_asked(
    booking: Booking,
    *,
    actor: Actor,
    by: str,
    calendly_reason: str,
    full: bool = False,
    note: str = "",
) -> int:
    """Note the request, free the slot on Calendly, then cancel and refund."""
    asked_at, _first = _note_cancel_request(booking, actor=actor, full=full, reason=note)
    _cancel_calendly_or_forget(booking, asked_at, calendly_reason=calendly_reason)
    booking.refresh_from_db()
    if booking.status == Booking.Status.PENDING_PAYMENT:
        booking_release_unpaid(
            booking=booking,
            reason=f"canceled by {by} before payment",
            cancel_event=False,
            actor=actor,
        )
        return 0
    return booking_refund_cancellation(
        booking=booking, at=asked_at, actor=actor, reason=f"canceled by {by}", full=full
    )


# --- Refunds from the back-office ----------------------------------------------------------


@dataclass(frozen=True)
class RefundStanding:
    """A payment as the refund page shows it, in minor units of its currency."""

    payment: Payment
    refunded: dict[str, int]  # by refund status
    remaining: int
    policy_percent: int  # what the agreed policy gives now
    policy_amount: int
    policy_remaining: int  # of that, not yet refunded or on its way
    waiting: list[RefundApproval]

    @property
    def currency(self) -> str:
        return self.payment.currency


def refund_standing(*, booking: Booking, payment: Payment, at: datetime) -> RefundStanding:
    """What was paid, refunded so far, remains, and what the agreed policy gives at
    ``at``: a confirmed booking as if cancelled then, a cancelled one as when it was
    (also when staff cancelled it for the client), any other nothing."""
    if booking.status == Booking.Status.CONFIRMED:
        percent = refund_percent(booking, at)
    elif booking.status == Booking.Status.CANCELED:
        # As the agreed policy gives it, even when staff cancelled for the client: a
        # full refund beyond it is theirs to ask for, and a second member's to approve.
        when = booking.cancel_requested_at or booking.status_changed_at
        percent = refund_percent(booking, when)
    else:
        percent = 0
    refunded: dict[str, int] = {}
    for status, amount in payment.refunds.values_list("status", "amount"):
        refunded[status] = refunded.get(status, 0) + amount
    committed = payment.committed_refunds()
    policy_amount = payment.amount * percent // 100
    return RefundStanding(
        payment=payment,
        refunded=refunded,
        remaining=payment.refundable() if payment.status in Payment.REFUNDABLE else 0,
        policy_percent=percent,
        policy_amount=policy_amount,
        policy_remaining=max(0, policy_amount - committed),
        waiting=list(payment.approvals.filter(status=RefundApproval.Status.PENDING)),
    )


def booking_refund_by_staff(
    *,
    booking: Booking,
    payment: Payment,
    amount: int,
    reason: str,
    actor: User,
    nonce: UUID,
) -> Refund | RefundApproval:
    """A Finance member's refund from the booking's page: made now, or waiting for a
    second member when above the threshold or beyond what the agreed policy gives now
    (``payments.services.refund_propose`` decides and audits). ``nonce`` comes with
    the form: the same submission twice refunds once."""
    if payment.booking_id != booking.pk:
        raise RefundRefused("That payment is not this booking's.")
    standing = refund_standing(booking=booking, payment=payment, at=timezone.now())
    return refund_propose(
        payment=payment,
        amount=amount,
        reason=reason,
        actor=actor,
        policy_amount=standing.policy_amount,
        reference=backoffice_reference(payment=payment, nonce=nonce),
    )


def _cancel_calendly_or_forget(
    booking: Booking, asked_at: datetime, *, calendly_reason: str
) -> None:
    """Free the slot on Calendly; if Calendly cannot be reached, forget the request
    (noted at ``asked_at``) so it can be made again, and raise."""
    try:
        cancel_calendly_event(booking, reason=calendly_reason)
    except calendly.CalendlyError:
        Booking.objects.filter(pk=booking.pk, cancel_requested_at=asked_at).update(
            cancel_requested_by=None,
            cancel_requested_at=None,
            cancel_refund_full=False,
            cancel_by_builder=False,
        )
        raise


def _note_cancel_request(
    booking: Booking,
    *,
    actor: Actor,
    full: bool = False,
    reason: str = "",
    by_builder: bool = False,
) -> tuple[datetime, bool]:
    """Record who asked to cancel and when (once: a repeat keeps the first time), and
    whether this request was the first. ``full``: staff cancel for the client (or, with
    ``by_builder``, the builder cancels), refunding everything, recorded only with the
    first request (a request that came second changes nothing: the full refund is
    decided for the one who asked first)."""
    now = timezone.now()
    with transaction.atomic():
        row = Booking.objects.select_for_update().get(pk=booking.pk)
        if row.cancel_requested_at is not None:
            return row.cancel_requested_at, False
        row.cancel_requested_at = now
        row.cancel_requested_by = actor if isinstance(actor, User) and actor.pk else None
        row.cancel_refund_full = full
        row.cancel_by_builder = by_builder
        row.save(
            update_fields=[
                "cancel_requested_at",
                "cancel_requested_by",
                "cancel_refund_full",
                "cancel_by_builder",
            ]
        )
        audit.record(
            "bookings.booking.cancel_requested",
            category=audit.Category.TRANSACTION,
            actor=actor,
            target=row,
            data={
                "status": row.status,
                "full_refund": full,
                "by_builder": by_builder,
                "reason": reason,
            },
        )
    return now, True


def cancel_calendly_event(booking: Booking, *, reason: str) -> None:
    try:
        with calendly.CalendlyClient() as client:
            client.cancel_event(booking.calendly_event_uri, reason=reason)
    except calendly.Forbidden:
        pass  # already canceled (or past): Calendly refuses a second cancel


# --- Unpaid bookings ------------------------------------------------------------------------


def booking_release_unpaid(
    *,
    booking: Booking,
    reason: str,
    cancel_event: bool = True,
    wait_for_async: bool = False,
    actor: Actor = ACTOR,
    calendly_reason: str = "Not paid in time",
) -> bool:
    """An unpaid booking lets its slot go: open Checkout Sessions expire at Stripe,
    the Calendly event is cancelled, the booking is ``expired``.

    Stripe is asked first: a session paid after all is settled instead (its webhook
    was lost), and with ``wait_for_async`` a bank debit still on its way keeps the
    booking. A debit that succeeds after the release is refunded by
    ``checkout_settle``."""
    # Every call to Stripe and Calendly first, then our writes.
    unpaid = []
    for payment in booking.payments.filter(status=Payment.Status.OPEN):
        session = stripe_gateway.retrieve_checkout_session(payment.checkout_session_id)
        if session.payment_status in ("paid", "no_payment_required"):
            checkout.checkout_settle(payment=payment, session=session)
            return False
        if session.status == "complete" and wait_for_async:
            return False
        if session.status == "open":
            session = stripe_gateway.expire_checkout_session(session.id)
        unpaid.append((payment, session))
    if cancel_event:
        cancel_calendly_event(booking, reason=calendly_reason)
    for payment, session in unpaid:
        checkout.checkout_settle(payment=payment, session=session)
    return booking.expire(actor=actor, reason=reason)


def hold_ends_at(booking: Booking) -> datetime:
    """When an unpaid booking lets its slot go: BOOKING_PAYMENT_HOLD_MINUTES after we
    recorded it, claimed (bookings.claims) or not."""
    return booking.created_at + timedelta(minutes=settings.BOOKING_PAYMENT_HOLD_MINUTES)


def not_paid_in_time() -> str:
    """Why Calendly is told the slot was released (the invitee reads it)."""
    return f"Not paid within {settings.BOOKING_PAYMENT_HOLD_MINUTES} minutes of booking"


def overdue_unpaid(now: datetime | None = None) -> list[Booking]:
    """Unpaid bookings past their hold: a client's, and one made straight on Calendly
    that nobody claimed (its claim link expired with the hold)."""
    cutoff = (now or timezone.now()) - timedelta(minutes=settings.BOOKING_PAYMENT_HOLD_MINUTES)
    return list(
        Booking.objects.filter(status=Booking.Status.PENDING_PAYMENT, created_at__lte=cutoff)
        .exclude(payments__session_status="complete", payments__status=Payment.Status.OPEN)
        .order_by("created_at")[:100]
    )


def expire_overdue(now: datetime | None = None) -> int:
    """Beat: release every unpaid booking past its hold, telling Calendly (and so the
    invitee) why. Returns how many expired."""
    count = 0
    for booking in overdue_unpaid(now):
        try:
            count += booking_release_unpaid(
                booking=booking,
                reason="not paid within the hold",
                wait_for_async=True,
                calendly_reason=not_paid_in_time(),
            )
        except (stripe_gateway.PaymentProviderError, calendly.CalendlyError):
            logger.warning("bookings.expiry.deferred", extra={"booking": booking.pk})
    return count


# --- Disputes -------------------------------------------------------------------------------


def intent_names_our_booking(payment_intent_id: str | None) -> bool:
    """Whether a Stripe PaymentIntent was made for one of our bookings (asks Stripe):
    an event about a charge we have no payment for is then early, not someone else's."""
    if not payment_intent_id:
        return False
    intent = stripe_gateway.retrieve_payment_intent(payment_intent_id)
    reference = intent.metadata.get("booking")
    if not reference:
        return False
    return Booking.objects.filter(reference=reference).exists()


def booking_dispute(*, dispute: stripe_gateway.Dispute, actor: Actor) -> Booking | None:
    """Stripe reports a dispute (any of its events, with the dispute re-read): its
    record and payment move as ``payments.services.dispute_sync`` decides (audited,
    Finance told), and the booking becomes ``disputed`` unless the dispute closed in
    our favour before we heard of it. A booking that cannot be disputed (say a
    rescheduled one) is flagged for review instead.

    Closed in our favour (won, an inquiry closed, prevented), the dispute gives the
    booking back the status it had when disputed (confirmed, completed, ...), audited
    as any transition, once none of its payments is held by a dispute (another one
    open, or lost). A lost dispute leaves it ``disputed``.

    None when the charge is not ours; NotReady when its payment is not recorded as
    paid yet."""
    payment = payment_for_charge(dispute.charge_id, dispute.payment_intent_id)
    if payment is None:
        if intent_names_our_booking(dispute.payment_intent_id):
            raise NotReady("the disputed payment is not recorded as paid yet")
        return None
    with transaction.atomic():
        outcome = dispute_sync(payment=payment, dispute=dispute, actor=actor)
        booking = Booking.objects.get(pk=payment.booking_id)
        if outcome.dispute.status in Dispute.CLOSED_FOR_US:
            _undispute(booking, outcome.dispute, actor=actor)
            return booking
        try:
            booking.dispute(actor=actor, reason=dispute.reason or "")
        except IllegalTransition:
            if "opened" in outcome.steps:
                Booking.objects.filter(pk=booking.pk).update(
                    needs_review=True, review_reason=f"disputed while {booking.status}"
                )
    return booking


def _undispute(booking: Booking, closed: Dispute, *, actor: Actor) -> None:
    """A dispute closed for us: the booking as it was, unless a dispute still holds
    one of its payments. A booking disputed before its status was kept is flagged."""
    if booking.status != Booking.Status.DISPUTED:
        return  # never disputed (closed before we heard of it), or given back already
    if booking.payments.filter(status__in=Payment.HELD_BY_DISPUTE).exists():
        return
    why = f"dispute {closed.stripe_dispute_id} {closed.status}"
    try:
        booking.undispute(actor=actor, reason=why, data={"dispute": closed.pk})
    except IllegalTransition:
        Booking.objects.filter(pk=booking.pk).update(
            needs_review=True, review_reason=f"{why}: its status before it is not known"
        )


def complete_past(now: datetime | None = None) -> int:
    """Beat: confirmed bookings that ended BOOKING_COMPLETE_AFTER_HOURS ago are
    ``completed`` (a no-show marked later still wins). Returns how many."""
    cutoff = (now or timezone.now()) - timedelta(hours=settings.BOOKING_COMPLETE_AFTER_HOURS)
    done = 0
    for booking in Booking.objects.filter(status=Booking.Status.CONFIRMED, end_at__lte=cutoff)[
        :500
    ]:
        done += booking.complete(actor=ACTOR)
    return done
