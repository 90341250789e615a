"""What bookings holds on a person, for data-subject requests (accounts.privacy).

Registered from BookingsConfig.ready: the bookings (invitee name, email, answers),
the refund-policy consents, and what Calendly holds on the invitee.
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

import audit
from accounts.privacy import DataKind, Step, Subject, registry
from bookings.calendly import CalendlyClient, CalendlyError
from bookings.models import Booking, PolicyConsent
from core.actors import Actor


def _bookings(subject: Subject) -> QuerySet[Booking]:
    return Booking.objects.filter(client=subject.user).select_related("event_type", "builder")


def _disputed(subject: Subject) -> list[str]:
    return [
        f"Booking {reference} is disputed: kept for the dispute."
        for reference in _bookings(subject)
        .filter(status=Booking.Status.DISPUTED)
        .values_list("reference", flat=True)
    ]


def _builder_open(subject: Subject) -> list[str]:
    """A builder's member: their builder's clients' bookings still open (to come, or
    disputed) are other people's records that name this person (Calendly's payloads,
    the emails sent): erasing the member would purge them while those are open."""
    open_bookings = Booking.objects.filter(builder__members=subject.user).filter(
        Q(status=Booking.Status.CONFIRMED, end_at__gt=timezone.now())
        | Q(status=Booking.Status.DISPUTED)
        | Q(status=Booking.Status.PENDING_PAYMENT)
    )
    builders = sorted(set(open_bookings.values_list("builder__name", flat=True)))
    return [
        f"{name}, whose member this is, has open bookings (to come, unpaid or disputed): "
        "they must be over or settled first."
        for name in builders
    ]


def _upcoming(subject: Subject) -> list[str]:
    """A confirmed session still to come: erasing would leave it confirmed for an
    anonymous client while Calendly forgets the invitee. It is canceled (refunded by
    the policy) or takes place first."""
    upcoming = (
        _bookings(subject)
        .filter(status=Booking.Status.CONFIRMED, end_at__gt=timezone.now())
        .order_by("start_at")
        .values_list("start_at", "reference")
    )
    return [
        f"An upcoming session on {start_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC "
        f"(booking {reference}) must be canceled or held first."
        for start_at, reference in upcoming
    ]


class BookingData(DataKind):
    """The bookings: their invitee name, email and answers are removed; the booking
    itself (times, price, status, references) stays with its payments."""

    def identities(self, user: Any) -> tuple[set[str], set[str]]:
        emails, names = set(), set()
        for booking in Booking.objects.filter(client=user).only("invitee_email", "invitee_name"):
            emails.add(booking.invitee_email or "")
            names.add(booking.invitee_name or "")
        return emails, names

    def export(self, subject: Subject) -> Any:
        return [
            {
                "reference": booking.reference,
                "builder": booking.builder.name,
                "session": booking.event_type.title,
                "start_at": booking.start_at,
                "end_at": booking.end_at,
                "time_zone": booking.invitee_time_zone,
                "status": booking.status,
                "price_amount": booking.price_amount,
                "currency": booking.currency,
                "name_given": booking.invitee_name,
                "email_given": booking.invitee_email,
                "answers": json.loads(booking.answers) if booking.answers else [],
                "created_at": booking.created_at,
                "calendly_invitee": booking.calendly_invitee_uri,
            }
            for booking in _bookings(subject).order_by("start_at")
        ]

    def holds(self, subject: Subject) -> list[str]:
        return _disputed(subject) + _upcoming(subject) + _builder_open(subject)

    def audit_targets(self, subject: Subject) -> list[tuple[str, str]]:
        return [
            ("bookings.booking", str(pk)) for pk in _bookings(subject).values_list("pk", flat=True)
        ]

    def erase(self, subject: Subject, *, arguments: dict[str, Any] | None, actor: Actor) -> Step:
        rows = _bookings(subject).exclude(
            invitee_name__isnull=True, invitee_email__isnull=True, answers__isnull=True
        )
        pks = list(rows.values_list("pk", flat=True))
        erased = Booking.objects.filter(pk__in=pks).update(
            invitee_name=None, invitee_email=None, answers=None
        )
        if erased:
            audit.record(
                "bookings.booking.anonymised",
                category=audit.Category.DATA,
                actor=actor,
                target=("accounts.user", subject.user.pk),
                data={"bookings": pks},
            )
        return Step(f"{erased} booking(s) anonymised (times, prices and references kept)")


class ConsentData(DataKind):
    """Refund-policy consents: evidence, kept. Once the account is anonymised they
    name only its pseudonym; policy, version and time stay."""

    def _consents(self, subject: Subject) -> QuerySet[PolicyConsent]:
        return PolicyConsent.objects.filter(user=subject.user).select_related("event_type")

    def export(self, subject: Subject) -> Any:
        return [
            {
                "session": consent.event_type.title,
                "policy_version": consent.policy_version,
                "policy": consent.policy,
                "consented_at": consent.consented_at,
                "booking": consent.booking.reference if consent.booking else None,
                "ip_truncated": consent.ip,
            }
            for consent in self._consents(subject).select_related("booking")
        ]

    def audit_targets(self, subject: Subject) -> list[tuple[str, str]]:
        pks = self._consents(subject).values_list("pk", flat=True)
        return [("bookings.policyconsent", str(pk)) for pk in pks]

    def erase(self, subject: Subject, *, arguments: dict[str, Any] | None, actor: Actor) -> Step:
        count = self._consents(subject).count()
        return Step(
            f"{count} consent(s) kept as evidence under pseudonym {subject.pseudonym} "
            "(policy, version and time)"
        )


class CalendlyData(DataKind):
    """What Calendly holds on the invitee: read for an export; for an erasure,
    Calendly is asked to delete every invitee with the person's emails (it answers
    202 and finishes within days)."""

    def export(self, subject: Subject) -> Any:
        invitees: list[dict[str, Any]] = []
        with CalendlyClient() as calendly:
            for uri in _bookings(subject).values_list("calendly_invitee_uri", flat=True):
                try:
                    invitee = calendly.get_invitee_by_uri(uri)
                except CalendlyError as exc:
                    invitees.append({"invitee": uri, "unavailable": type(exc).__name__})
                    continue
                invitees.append(
                    {
                        "invitee": invitee.uri,
                        "name": invitee.name,
                        "email": invitee.email,
                        "status": invitee.status,
                        "timezone": invitee.timezone,
                        "questions_and_answers": [
                            {"question": qa.question, "answer": qa.answer}
                            for qa in invitee.questions_and_answers
                        ],
                        "created_at": invitee.created_at,
                    }
                )
        return invitees

    def holds(self, subject: Subject) -> list[str]:
        return _disputed(subject)

    def plan(self, subject: Subject) -> dict[str, Any] | None:
        return {"emails": sorted(subject.emails)} if subject.emails else None

    def erase(self, subject: Subject, *, arguments: dict[str, Any] | None, actor: Actor) -> Step:
        emails = (arguments or {}).get("emails") or []
        if not emails:
            return Step("no email to send to Calendly")
        with CalendlyClient() as calendly:
            calendly.request_invitee_data_deletion(emails)
        return Step(f"Calendly accepted the deletion of {len(emails)} invitee email(s) (202)")


def register() -> None:
    registry.register(
        CalendlyData("calendly.invitees", "What Calendly holds", position=10, provider=True)
    )
    registry.register(BookingData("bookings.bookings", "Your bookings", position=40))
    registry.register(ConsentData("bookings.consents", "Your consents", position=45))
