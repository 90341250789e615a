"""Reconciliation: what Stripe and Calendly say happened, against what we recorded.

Webhooks are delivered at least once only while the endpoint answers: an endpoint
that was down longer than the provider retries, a delivery lost on the way, or a
Calendly subscription that was disabled leaves our records behind. A daily run
(beat, ``bookings.tasks.reconcile``) and ``manage.py reconcile --since`` catch up:

1. **Repair through the inbox.** Stripe's events of the types we handle, created
   since ``since``, that the inbox does not hold are stored exactly as their delivery
   would have been (``webhooks.services.event_feed``: same dedup key, so a late
   delivery is a duplicate; ``source`` says reconciliation) and processed by the
   usual handlers. Calendly keeps no event log: an invitee canceled in Calendly
   whose booking is still active here is fed as the ``invitee.canceled`` delivery it
   would have been (key ``invitee.canceled:<invitee uuid>``, as the endpoint derives
   it); the handler re-reads the invitee from Calendly before acting, so the
   synthesised body decides nothing by itself.
2. **List what needs a person.** Checkout Sessions, refunds and Calendly's canceled
   invitees are compared with our bookings, payments and refunds after the repairs;
   each disagreement becomes (or stays) a :class:`~bookings.models.Drift` row, shown
   in the admin. Drift in this run's window that is no longer found is resolved.

Each run is audited with its counts. A run that fails raises the ``reconcile.failed``
alert (Finance); the next good run clears it.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

import audit
from bookings import calendly
from bookings.models import Booking, Drift
from core import alerts
from core.masking import scrub_text
from payments import stripe_gateway
from payments.models import Payment
from payments.models import Refund as RefundRow
from payments.services import payment_for_charge
from webhooks import services as inbox
from webhooks.models import Provider, WebhookEvent
from webhooks.registry import registry

logger = logging.getLogger(__name__)

ACTOR = "bookings.reconcile"
ALERT_KEY = "reconcile.failed"
# Stripe filters a list of events on at most this many types at once.
STRIPE_MAX_TYPES = 20
# Rounds of retrying fed events that waited for an earlier one (fed oldest first,
# so one round is normally enough).
RETRY_ROUNDS = 3

Kind = Drift.Kind
PAID_STATES = (
    Payment.Status.PAID,
    Payment.Status.PARTIALLY_REFUNDED,
    Payment.Status.REFUNDED,
    Payment.Status.DISPUTED,
    Payment.Status.DISPUTE_LOST,
)
ACTIVE_BOOKING = (Booking.Status.PENDING_PAYMENT, Booking.Status.CONFIRMED)


@dataclass(frozen=True)
class FedEvent:
    """An event stored in the inbox by this run, and where its processing ended."""

    provider: str
    event_type: str
    event_id: str
    status: str


@dataclass(frozen=True)
class Finding:
    kind: str
    key: str
    window_at: datetime
    detail: str
    booking: Booking | None = None
    payment: Payment | None = None
    provider_ids: dict[str, str] = field(default_factory=dict)
    amount_expected: int | None = None
    amount_actual: int | None = None
    currency: str = ""


@dataclass
class Report:
    since: datetime
    listed: Counter[str] = field(default_factory=Counter)
    fed: list[FedEvent] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    opened: int = 0
    resolved: int = 0
    open_by_kind: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, Any]:
        """What the audit entry and the alert say: counts and ids, no personal data."""
        return {
            "since": self.since.isoformat(),
            "listed": dict(sorted(self.listed.items())),
            "fed": len(self.fed),
            "fed_by_type": dict(sorted(Counter(f.event_type for f in self.fed).items())),
            "found": dict(sorted(Counter(f.kind for f in self.findings).items())),
            "opened": self.opened,
            "resolved": self.resolved,
            "open": self.open_by_kind,
        }

    def lines(self) -> Iterator[str]:
        """The run as a person reads it (the command prints these)."""
        yield f"Reconciled since {self.since.isoformat()}."
        for name, count in sorted(self.listed.items()):
            yield f"Listed {count} {name.replace('_', ' ')}."
        if not self.fed:
            yield "Fed nothing through the inbox: every event was already there."
        for item in self.fed:
            yield f"Fed {item.provider} {item.event_type} {item.event_id}: {item.status}."
        yield (
            f"Drift: {len(self.findings)} found, {self.opened} new, {self.resolved} resolved, "
            f"{sum(self.open_by_kind.values())} open."
        )
        labels = dict(Kind.choices)
        for kind, count in self.open_by_kind.items():
            yield f"  {labels.get(kind, kind)}: {count}"


def default_since(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(hours=settings.RECONCILE_LOOKBACK_HOURS)


def reconcile(*, since: datetime | None = None) -> Report:
    """Run once over everything created (Stripe) or starting (Calendly) since ``since``
    (default RECONCILE_LOOKBACK_HOURS ago). Raises what failed, after raising the
    ``reconcile.failed`` alert; a good run clears it."""
    report = Report(since=since or default_since())
    try:
        _repair_stripe(report)
        canceled = _repair_calendly(report)
        _process_fed(report)
        report.findings = [
            *_check_sessions(report),
            *_check_refunds(report),
            *_check_cancellations(canceled),
            *_check_confirmed(report),
        ]
        _record(report)
    except Exception as exc:
        logger.exception("bookings.reconcile.failed", extra={"since": report.since.isoformat()})
        _record_failure(report, exc)
        raise
    alerts.clear_alert(ALERT_KEY, summary="Reconciliation ran again without failing.")
    logger.info("bookings.reconcile.done", extra=report.counts())
    return report


# --- Repairs --------------------------------------------------------------------------


def _stripe_events(since: datetime) -> list[stripe_gateway.Event]:
    """Stripe's events of the types we have handlers for, oldest first (the order in
    which they happened, so that a refund comes after the payment it refunds)."""
    types = registry.event_types(Provider.STRIPE)
    if not types:
        return []
    wanted = set(types)
    listed = stripe_gateway.iter_events(
        types=types if len(types) <= STRIPE_MAX_TYPES else (), created_gte=since
    )
    events = [event for event in listed if event.type in wanted]
    # Newest first in Stripe's list: reversed, events of the same second keep their order.
    events.reverse()
    return sorted(events, key=lambda event: event.created)


def _repair_stripe(report: Report) -> None:
    events = _stripe_events(report.since)
    report.listed["stripe_events"] += len(events)
    known = set(
        WebhookEvent.objects.filter(
            provider=Provider.STRIPE, event_id__in=[event.id for event in events]
        ).values_list("event_id", flat=True)
    )
    for event in events:
        if event.id not in known:
            _feed(report, Provider.STRIPE, event.body)


@dataclass(frozen=True)
class _Canceled:
    """A Calendly invitee canceled there, with the booking it is here."""

    invitee: calendly.Invitee
    event: calendly.ScheduledEvent
    booking: Booking


def _repair_calendly(report: Report) -> list[_Canceled]:
    """Canceled invitees of appointments starting since ``since``, whose booking is
    active here: each fed as the ``invitee.canceled`` delivery we never got, unless
    the inbox holds that delivery already (its handler decided; drift if still
    active). Calendly filters by start time only, so the window is the appointment's."""
    found: list[_Canceled] = []
    with calendly.CalendlyClient() as client:
        me = client.current_user()
        events = client.list_scheduled_events(
            organization=me.current_organization, min_start_time=report.since
        )
        report.listed["calendly_events"] += len(events)
        for event in events:
            if not _has_canceled_invitees(event):
                continue
            for invitee in client.list_event_invitees(event.uri, status="canceled"):
                report.listed["calendly_canceled_invitees"] += 1
                booking = Booking.objects.for_invitee(invitee.uuid).first()
                if booking is None:
                    continue  # not ours, or never recorded: nothing to cancel here
                found.append(_Canceled(invitee, event, booking))
                if booking.status not in ACTIVE_BOOKING:
                    continue
                if not _calendly_known(f"invitee.canceled:{invitee.uuid}"):
                    _feed(report, Provider.CALENDLY, _canceled_body(invitee, event, me.uri))
    return found


def _has_canceled_invitees(event: calendly.ScheduledEvent) -> bool:
    if event.status == "canceled":
        return True
    total, active = event.invitees_total, event.invitees_active
    # A group event stays active while one of its invitees cancels.
    return total is None or active is None or active < total


def _calendly_known(event_id: str) -> bool:
    return WebhookEvent.objects.filter(provider=Provider.CALENDLY, event_id=event_id).exists()


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _canceled_body(
    invitee: calendly.Invitee, event: calendly.ScheduledEvent, created_by: str
) -> dict[str, Any]:
    """The ``invitee.canceled`` delivery Calendly would have sent, from the invitee as
    its API reports it now (the envelope and the parts the handlers read)."""
    cancellation = invitee.cancellation
    at = (cancellation.created_at if cancellation else None) or timezone.now()
    payload: dict[str, Any] = {
        "uri": invitee.uri,
        "email": invitee.email,
        "name": invitee.name,
        "status": invitee.status,
        "timezone": invitee.timezone,
        "event": event.uri,
        "rescheduled": invitee.rescheduled,
        "old_invitee": invitee.old_invitee,
        "new_invitee": invitee.new_invitee,
        "scheduled_event": {
            "uri": event.uri,
            "name": event.name,
            "status": event.status,
            "start_time": _iso(event.start_time),
            "end_time": _iso(event.end_time),
            "event_type": event.event_type_uri,
        },
        "tracking": {
            name: getattr(invitee.tracking, name) for name in ("utm_source", "utm_content")
        },
    }
    if invitee.created_at is not None:
        payload["created_at"] = _iso(invitee.created_at)
    if cancellation is not None:
        payload["cancellation"] = {
            "canceled_by": cancellation.canceled_by,
            "reason": cancellation.reason,
            "canceler_type": cancellation.canceler_type,
            "created_at": _iso(at),
        }
    # Calendly leaves optional keys out rather than null; so do we.
    payload = {key: value for key, value in payload.items() if value is not None}
    return {
        "event": "invitee.canceled",
        "created_at": _iso(at),
        "created_by": created_by,
        "payload": payload,
    }


def _feed(report: Report, provider: str, body: Any) -> None:
    fed = inbox.event_feed(provider=provider, data=body)
    if fed.outcome != "stored" or fed.event is None:
        return  # a delivery came in meanwhile, or we do not handle the type
    report.fed.append(
        FedEvent(provider, fed.event.event_type, fed.event.event_id, fed.event.status)
    )


def _process_fed(report: Report) -> None:
    """Process what was fed now, in the order it happened, so that the comparison
    below sees the repairs (a worker that already took an event is left to it), then
    give events that waited for an earlier one another try."""
    keys = [(item.provider, item.event_id) for item in report.fed]
    rows = {(row.provider, row.event_id): row.pk for row in _fed_rows(report)}
    for key in keys:
        if key in rows:
            inbox.event_process(pk=rows[key])
    for _ in range(RETRY_ROUNDS):
        waiting = [row.pk for row in _fed_rows(report) if row.status == WebhookEvent.Status.WAITING]
        if not waiting:
            break
        for pk in waiting:
            inbox.event_process(pk=pk, force=True)
    statuses = {(row.provider, row.event_id): row.status for row in _fed_rows(report)}
    report.fed = [
        FedEvent(item.provider, item.event_type, item.event_id, statuses.get(key, item.status))
        for item, key in zip(report.fed, keys, strict=True)
    ]


def _fed_rows(report: Report) -> Iterable[WebhookEvent]:
    for provider in {item.provider for item in report.fed}:
        ids = [item.event_id for item in report.fed if item.provider == provider]
        yield from WebhookEvent.objects.filter(provider=provider, event_id__in=ids)


# --- Comparisons ----------------------------------------------------------------------


def _named_booking(session: stripe_gateway.CheckoutSession) -> tuple[bool, Booking | None]:
    """(ours, booking): a session is ours when its metadata holds a booking reference
    of our form (another integration may share the Stripe account); the booking is
    None when we hold no booking of that reference."""
    reference = session.metadata.get("booking", "")
    try:
        uuid.UUID(reference)
    except ValueError:
        return False, None
    return True, Booking.objects.filter(reference=reference).first()


def _check_sessions(report: Report) -> Iterator[Finding]:
    for session in stripe_gateway.iter_checkout_sessions(created_gte=report.since):
        report.listed["checkout_sessions"] += 1
        if session.payment_status not in ("paid", "no_payment_required"):
            continue
        ours, booking = _named_booking(session)
        if not ours:
            continue
        window = session.created or report.since
        ids = {"checkout_session": session.id, "payment_intent": session.payment_intent_id or ""}
        paid = session.amount_total or 0
        currency = (session.currency or "").lower()
        if booking is None:
            yield Finding(
                Kind.PAID_NO_BOOKING,
                f"{Kind.PAID_NO_BOOKING}:{session.id}",
                window,
                "Paid in Stripe; the booking it names is not recorded here.",
                provider_ids=ids,
                amount_actual=paid,
                currency=currency,
            )
            continue
        payment = Payment.objects.filter(checkout_session_id=session.id).first()
        if payment is None or payment.status not in PAID_STATES:
            yield Finding(
                Kind.PAID_NOT_RECORDED,
                f"{Kind.PAID_NOT_RECORDED}:{session.id}",
                window,
                "Paid in Stripe; our payment is "
                + (f"{payment.get_status_display().lower()}." if payment else "missing."),
                booking=booking,
                payment=payment,
                provider_ids=ids,
                amount_expected=booking.price_amount,
                amount_actual=paid,
                currency=currency,
            )
            continue
        net = paid - session.amount_tax
        if currency != booking.currency or net != booking.price_amount or net != payment.amount:
            yield Finding(
                Kind.AMOUNT_MISMATCH,
                f"{Kind.AMOUNT_MISMATCH}:{session.id}",
                window,
                f"Stripe took {net} {currency} before tax; the booking's price is "
                f"{booking.price_amount} {booking.currency}, our payment says {payment.amount}.",
                booking=booking,
                payment=payment,
                provider_ids=ids,
                amount_expected=booking.price_amount,
                amount_actual=net,
                currency=currency,
            )


def _check_refunds(report: Report) -> Iterator[Finding]:
    for refund in stripe_gateway.iter_refunds(created_gte=report.since):
        report.listed["refunds"] += 1
        if refund.status != "succeeded":
            continue
        payment = payment_for_charge(refund.charge_id, refund.payment_intent_id)
        if payment is None:
            continue  # not a payment of ours (or one paid-no-booking lists)
        booking = Booking.objects.get(pk=payment.booking_id)
        ours = RefundRow.objects.filter(stripe_refund_id=refund.id).first()
        if ours is None:
            kind = Kind.REFUND_NOT_RECORDED
            detail = (
                f"Stripe refunded {refund.amount} {refund.currency}; no refund of ours matches."
            )
        elif booking.status == Booking.Status.CONFIRMED and (
            ours.external or payment.status == Payment.Status.REFUNDED
        ):
            kind = Kind.REFUNDED_BUT_ACTIVE
            made = "in the Stripe dashboard" if ours.external else "in full"
            detail = (
                f"Refunded {made} ({refund.amount} {refund.currency}); the booking is "
                "still confirmed."
            )
        else:
            continue
        yield Finding(
            kind,
            f"{kind}:{refund.id}",
            refund.created or report.since,
            detail,
            booking=booking,
            payment=payment,
            provider_ids={"refund": refund.id, "charge": refund.charge_id or ""},
            amount_expected=payment.amount,
            amount_actual=refund.amount,
            currency=refund.currency,
        )


def _check_cancellations(canceled: list[_Canceled]) -> Iterator[Finding]:
    for item in canceled:
        if item.invitee.rescheduled:
            continue  # the payment moves to the new booking
        booking = Booking.objects.get(pk=item.booking.pk)
        if booking.status != Booking.Status.CONFIRMED:
            continue
        payment = booking.payments.filter(status__in=Payment.REFUNDABLE).first()
        if payment is None:
            continue
        yield Finding(
            Kind.CANCELED_BUT_CHARGED,
            f"{Kind.CANCELED_BUT_CHARGED}:{item.invitee.uuid}",
            item.event.start_time,
            "Canceled in Calendly; the booking is confirmed here and its payment stands.",
            booking=booking,
            payment=payment,
            provider_ids={"calendly_invitee": item.invitee.uri, "calendly_event": item.event.uri},
            amount_expected=0,
            amount_actual=payment.amount - payment.committed_refunds(),
            currency=payment.currency,
        )


def _check_confirmed(report: Report) -> Iterator[Finding]:
    """Our own side: a confirmed booking whose appointment is in the window and that
    no paid payment backs."""
    unpaid = (
        Booking.objects.filter(status=Booking.Status.CONFIRMED, start_at__gte=report.since)
        .exclude(payments__status__in=PAID_STATES)
        .order_by("start_at")
    )
    for booking in unpaid:
        report.listed["confirmed_bookings_without_payment"] += 1
        yield Finding(
            Kind.CONFIRMED_NO_PAYMENT,
            f"{Kind.CONFIRMED_NO_PAYMENT}:{booking.reference}",
            booking.start_at,
            "Confirmed here with no paid payment.",
            booking=booking,
            payment=booking.payments.order_by("-created_at").first(),
            amount_expected=booking.price_amount,
            amount_actual=0,
            currency=booking.currency,
        )


# --- Recording ------------------------------------------------------------------------


def _record(report: Report) -> None:
    """Drift rows for the findings, resolution of what this window no longer shows,
    and the run's audit entry, in one transaction."""
    now = timezone.now()
    findings = {finding.key: finding for finding in report.findings}
    with transaction.atomic():
        existing = {
            row.key: row for row in Drift.objects.select_for_update().filter(key__in=findings)
        }
        for key, finding in findings.items():
            row = existing.get(key)
            values = {
                "kind": finding.kind,
                "booking": finding.booking,
                "payment": finding.payment,
                "provider_ids": finding.provider_ids,
                "amount_expected": finding.amount_expected,
                "amount_actual": finding.amount_actual,
                "currency": finding.currency,
                "detail": finding.detail[:300],
                "window_at": finding.window_at,
                "last_seen_at": now,
                "resolved_at": None,
            }
            if row is None or row.resolved_at is not None:
                report.opened += 1
            if row is None:
                row = Drift.objects.create(key=key, first_seen_at=now, **values)
                audit.record(
                    "bookings.drift.found",
                    category=audit.Category.TRANSACTION,
                    actor=ACTOR,
                    target=row,
                    data={"kind": finding.kind, "key": key},
                )
                continue
            for name, value in values.items():
                setattr(row, name, value)
            row.save(update_fields=[*values])
        resolved = Drift.objects.filter(resolved_at__isnull=True, window_at__gte=report.since)
        report.resolved = resolved.exclude(key__in=findings).update(resolved_at=now)
        open_rows = Drift.objects.filter(resolved_at__isnull=True)
        kinds = Counter(open_rows.values_list("kind", flat=True))
        report.open_by_kind = dict(sorted(kinds.items()))
        audit.record(
            "bookings.reconcile.ran",
            category=audit.Category.TRANSACTION,
            actor=ACTOR,
            data=report.counts(),
        )


def _record_failure(report: Report, exc: Exception) -> None:
    """Audit the failed run and alert Finance. What was fed stays fed (the inbox
    processes it whatever happens here)."""
    error = type(exc).__name__
    try:
        with transaction.atomic():
            audit.record(
                "bookings.reconcile.failed",
                category=audit.Category.TRANSACTION,
                actor=ACTOR,
                data={**report.counts(), "error": error},
            )
        alerts.raise_alert(
            ALERT_KEY,
            summary=f"Reconciliation failed ({error}); drift is not being checked.",
            lines=[
                f"Window: since {report.since.isoformat()}.",
                f"Fed before failing: {len(report.fed)} event(s).",
                f"Error: {error}: {scrub_text(str(exc))[:200]}",
                "Details are in the log under bookings.reconcile.failed.",
                "Run `manage.py reconcile` once the cause is fixed.",
            ],
        )
    except Exception:
        logger.exception("bookings.reconcile.failure_not_recorded")
