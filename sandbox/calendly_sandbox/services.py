"""What happens in the Calendly sandbox: booking, cancelling, rescheduling, no-shows.

Each use-case is one transaction and enqueues its webhooks inside it, so a booking
and its ``invitee.created`` commit (and leave) together or not at all.
"""

from __future__ import annotations

import uuid as uuid_lib
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import IntegrityError
from django.utils import timezone

from sandbox import db, delivery, scrub
from sandbox.calendly_sandbox.models import (
    EventType,
    Fault,
    Host,
    Invitee,
    Organization,
    ScheduledEvent,
    SubscriptionDelivery,
    WebhookSubscription,
)
from sandbox.calendly_sandbox.resources import Urls, invitee_resource, stamp
from sandbox.models import Delivery, DeliveryAttempt

SCHEDULING_DAYS = 14
WORKDAY_START = time(9, 0)
WORKDAY_END = time(17, 0)
WEBHOOK_EVENTS = (
    "invitee.created",
    "invitee.canceled",
    "invitee_no_show.created",
    "invitee_no_show.deleted",
    "routing_form_submission.created",
)
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")


class SlotTakenError(Exception):
    """The slot is not (or no longer) open."""


# --- Slots ----------------------------------------------------------------------------


def open_slots(
    event_type: EventType, *, now: datetime | None = None, days: int = SCHEDULING_DAYS
) -> list[datetime]:
    """Start times (UTC) over the next ``days`` days: the host's working hours on
    weekdays in the host's time zone, cut into slots of the event's duration, minus
    anything overlapping the host's active events."""
    now = now or timezone.now()
    zone = ZoneInfo(event_type.host.timezone)
    length = timedelta(minutes=event_type.duration)
    today = now.astimezone(zone).date()
    horizon = now + timedelta(days=days)
    busy = list(
        ScheduledEvent.objects.filter(
            host=event_type.host,
            status=ScheduledEvent.Status.ACTIVE,
            end_time__gt=now,
            start_time__lt=horizon + length,
        ).values_list("start_time", "end_time")
    )
    slots = []
    for offset in range(days + 1):
        day = today + timedelta(days=offset)
        if day.weekday() >= 5:
            continue
        for start in _day_slots(day, zone, length):
            end = start + length
            if start <= now or start >= horizon:
                continue
            if any(b_start < end and start < b_end for b_start, b_end in busy):
                continue
            slots.append(start.astimezone(ZoneInfo("UTC")))
    return slots


def _day_slots(day: date, zone: ZoneInfo, length: timedelta) -> Iterable[datetime]:
    start = datetime.combine(day, WORKDAY_START, tzinfo=zone)
    close = datetime.combine(day, WORKDAY_END, tzinfo=zone)
    while start + length <= close:
        yield start
        # Step in UTC so a DST change moves the wall clock, not the slot length.
        start = (start.astimezone(ZoneInfo("UTC")) + length).astimezone(zone)


# --- Webhooks -------------------------------------------------------------------------


def emit(*, event: str, invitee: Invitee, urls: Urls) -> int:
    """Enqueue ``event`` for every active subscription that wants it; how many."""
    host = invitee.scheduled_event.host
    body = {
        "created_at": stamp(timezone.now()),
        "created_by": urls.user(host),
        "event": event,
        "payload": invitee_resource(invitee, urls, webhook=True),
    }
    sent = 0
    for subscription in WebhookSubscription.objects.filter(
        organization=host.organization, state=WebhookSubscription.State.ACTIVE
    ):
        if subscription.wants(event, host):
            sending = delivery.enqueue(
                provider="calendly",
                event_type=event,
                url=subscription.callback_url,
                secret=subscription.signing_key,
                payload=body,
            )
            SubscriptionDelivery.objects.create(subscription=subscription, delivery=sending)
            sent += 1
    return sent


# Calendly retries a failing subscription's deliveries for a day, then disables it
# unless something got through meanwhile. The sandbox gives up on a delivery after
# SANDBOX_WEBHOOK_MAX_ATTEMPTS (minutes, not a day), and disables the subscription
# after this many deliveries in a row given up, none delivered since.
DISABLE_AFTER_FAILED_DELIVERIES = 3


def subscription_disable(*, subscription: WebhookSubscription) -> bool:
    """Disable it, as Calendly does (or as the operator asks on the dashboard): it gets
    no more deliveries, those still waiting are given up, and the API shows
    ``state: disabled`` until its owner deletes and recreates it. False if it was."""
    with db.atomic():
        disabled = WebhookSubscription.objects.filter(
            pk=subscription.pk, state=WebhookSubscription.State.ACTIVE
        ).update(state=WebhookSubscription.State.DISABLED, updated_at=timezone.now())
        Delivery.objects.filter(
            calendly_subscription__subscription=subscription, status=Delivery.Status.PENDING
        ).update(status=Delivery.Status.FAILED)
    return bool(disabled)


def subscriptions_follow_deliveries() -> int:
    """Bring each active subscription's ``retry_started_at`` and ``state`` in line with
    its deliveries: failing since the first attempt that failed after the last one
    delivered; disabled after DISABLE_AFTER_FAILED_DELIVERIES given up in a row. Runs
    on every dispatcher pass and before the API shows a subscription. Returns how
    many it disabled."""
    disabled = 0
    for subscription in WebhookSubscription.objects.filter(state=WebhookSubscription.State.ACTIVE):
        sent = Delivery.objects.filter(calendly_subscription__subscription=subscription)
        last_delivered = (
            sent.filter(status=Delivery.Status.DELIVERED).order_by("-pk").values("pk").first()
        )
        since = sent.filter(pk__gt=last_delivered["pk"]) if last_delivered else sent
        failing_since = (
            DeliveryAttempt.objects.filter(delivery__in=since)
            .order_by("attempted_at")
            .values_list("attempted_at", flat=True)
            .first()
        )
        if failing_since != subscription.retry_started_at:
            WebhookSubscription.objects.filter(pk=subscription.pk).update(
                retry_started_at=failing_since
            )
        given_up = since.filter(status=Delivery.Status.FAILED).count()
        if given_up >= DISABLE_AFTER_FAILED_DELIVERIES and subscription_disable(
            subscription=subscription
        ):
            disabled += 1
    return disabled


# --- Use-cases --------------------------------------------------------------------------


def host_with_event_type_create(
    *,
    host_name: str,
    host_email: str,
    host_slug: str,
    host_timezone: str,
    event_name: str,
    event_slug: str,
    duration: int,
    redirect_url: str = "",
    question: str = "",
) -> EventType:
    """A host (reused when the slug exists) with a new event type."""
    with db.atomic():
        host = Host.objects.filter(slug=host_slug).first()
        if host is None:
            organization = Organization.objects.first() or Organization.objects.create(
                name="Sandbox organization"
            )
            host = Host.objects.create(
                organization=organization,
                name=host_name,
                email=host_email,
                slug=host_slug,
                timezone=host_timezone,
            )
        return EventType.objects.create(
            host=host,
            name=event_name,
            slug=event_slug,
            duration=duration,
            redirect_url=redirect_url,
            question=question,
        )


def current_host() -> Host:
    """Whom the API token belongs to: the first host, created on first use."""
    host = Host.objects.select_related("organization").first()
    if host is not None:
        return host
    event_type = host_with_event_type_create(
        host_name="Sandbox Host",
        host_email="host@sandbox.invalid",
        host_slug="sandbox-host",
        host_timezone="Europe/Berlin",
        event_name="30 Minute Meeting",
        event_slug="30min",
        duration=30,
    )
    return event_type.host


def invitee_book(
    *,
    event_type: EventType,
    start: datetime,
    name: str,
    email: str,
    invitee_timezone: str,
    urls: Urls,
    first_name: str | None = None,
    last_name: str | None = None,
    answer: str = "",
    tracking: Mapping[str, str] | None = None,
    rescheduling: Invitee | None = None,
    reason: str = "",
) -> Invitee:
    """Book ``start`` (one of ``open_slots``) and send ``invitee.created``.

    With ``rescheduling``, that invitee is canceled as ``rescheduled`` and linked to
    the new one (``invitee.canceled`` then ``invitee.created``), as Calendly does.
    Raises SlotTakenError when the slot is no longer open.
    """
    tracking = tracking or {}
    try:
        with db.atomic():
            # One booking per host at a time (PostgreSQL); SQLite serialises writers.
            host = Host.objects.select_for_update().get(pk=event_type.host_id)
            if rescheduling is not None:
                rescheduling = Invitee.objects.select_for_update().get(pk=rescheduling.pk)
                if rescheduling.status != Invitee.Status.ACTIVE:
                    raise SlotTakenError("this booking was canceled")
            if start not in open_slots(event_type):
                raise SlotTakenError("slot not open")
            now = timezone.now()
            event = ScheduledEvent.objects.create(
                event_type=event_type,
                host=host,
                name=event_type.name,
                start_time=start,
                end_time=start + timedelta(minutes=event_type.duration),
                location=event_type.location,
            )
            answers = []
            if event_type.question and answer:
                answers = [{"question": event_type.question, "answer": answer, "position": 0}]
            invitee = Invitee.objects.create(
                scheduled_event=event,
                name=name,
                first_name=first_name or None,
                last_name=last_name or None,
                email=email,
                timezone=invitee_timezone,
                questions_and_answers=answers,
                old_invitee=rescheduling,
                created_at=now,
                updated_at=now,
                **{key: (tracking.get(key) or "")[:500] for key in UTM_KEYS},
            )
            if rescheduling is not None:
                rescheduling.rescheduled = True
                _cancel(
                    rescheduling,
                    canceled_by=rescheduling.name,
                    reason=reason or "Rescheduled",
                    canceler_type="invitee",
                    urls=urls,
                )
            emit(event="invitee.created", invitee=invitee, urls=urls)
            return invitee
    except IntegrityError as exc:  # a concurrent booking of the same slot won
        raise SlotTakenError("slot taken") from exc


def _cancel(
    invitee: Invitee, *, canceled_by: str, reason: str, canceler_type: str, urls: Urls
) -> None:
    now = timezone.now()
    invitee.status = Invitee.Status.CANCELED
    invitee.canceled_by = canceled_by
    invitee.cancel_reason = reason
    invitee.canceler_type = canceler_type
    invitee.canceled_at = now
    invitee.updated_at = now
    invitee.save(
        update_fields=[
            "status",
            "rescheduled",
            "canceled_by",
            "cancel_reason",
            "canceler_type",
            "canceled_at",
            "updated_at",
        ]
    )
    event = invitee.scheduled_event
    # A one-on-one event goes when its invitee goes, freeing the slot.
    if (
        event.status == ScheduledEvent.Status.ACTIVE
        and not event.invitees.filter(status=Invitee.Status.ACTIVE).exists()
    ):
        _cancel_event_row(
            event, canceled_by=canceled_by, reason=reason, canceler_type=canceler_type
        )
    emit(event="invitee.canceled", invitee=invitee, urls=urls)


def _cancel_event_row(
    event: ScheduledEvent, *, canceled_by: str, reason: str, canceler_type: str
) -> None:
    event.status = ScheduledEvent.Status.CANCELED
    event.canceled_by = canceled_by
    event.cancel_reason = reason
    event.canceler_type = canceler_type
    event.canceled_at = timezone.now()
    event.save(
        update_fields=[
            "status",
            "canceled_by",
            "cancel_reason",
            "canceler_type",
            "canceled_at",
            "updated_at",
        ]
    )


def invitee_cancel(*, invitee: Invitee, reason: str, urls: Urls) -> bool:
    """The invitee cancels from their cancel link; False when already canceled."""
    with db.atomic():
        invitee = Invitee.objects.select_for_update().get(pk=invitee.pk)
        if invitee.status != Invitee.Status.ACTIVE:
            return False
        _cancel(
            invitee, canceled_by=invitee.name, reason=reason, canceler_type="invitee", urls=urls
        )
        return True


def event_cancel(*, event: ScheduledEvent, reason: str, urls: Urls) -> bool:
    """The host (or the API) cancels the event: every active invitee is canceled."""
    with db.atomic():
        event = ScheduledEvent.objects.select_for_update().select_related("host").get(pk=event.pk)
        if event.status != ScheduledEvent.Status.ACTIVE:
            return False
        _cancel_event_row(event, canceled_by=event.host.name, reason=reason, canceler_type="host")
        for invitee in event.invitees.filter(status=Invitee.Status.ACTIVE):
            _cancel(
                invitee,
                canceled_by=event.host.name,
                reason=reason,
                canceler_type="host",
                urls=urls,
            )
        return True


def invitee_mark_no_show(*, invitee: Invitee, urls: Urls) -> bool:
    """The host marks a no-show; False when already marked."""
    with db.atomic():
        invitee = Invitee.objects.select_for_update().get(pk=invitee.pk)
        if invitee.no_show_uuid:
            return False
        invitee.no_show_uuid = str(uuid_lib.uuid4())
        invitee.no_show_at = invitee.updated_at = timezone.now()
        invitee.save(update_fields=["no_show_uuid", "no_show_at", "updated_at"])
        emit(event="invitee_no_show.created", invitee=invitee, urls=urls)
        return True


def invitees_erase(*, emails: Iterable[str]) -> int:
    """Data-compliance deletion, as Calendly does it: each invitee's name and answers
    are deleted and its email becomes ``…@deleted.calendly.com``; the copies in the
    webhook deliveries go too. Returns how many invitees were erased."""
    wanted = {e.strip().lower() for e in emails if e}
    erased = 0
    values: set[str] = set()
    with db.atomic():
        for invitee in Invitee.objects.select_for_update().select_related("scheduled_event"):
            if invitee.email.lower() not in wanted:
                continue
            values |= {v for v in (invitee.email, invitee.name) if v and len(v) >= 3}
            values |= {v for v in (invitee.first_name, invitee.last_name) if v and len(v) >= 3}
            event = invitee.scheduled_event
            if event.canceled_by and event.canceled_by == invitee.name:
                event.canceled_by = ""
                event.save(update_fields=["canceled_by", "updated_at"])
            if invitee.canceled_by == invitee.name:
                invitee.canceled_by = ""
            invitee.name = "Deleted invitee"
            invitee.first_name = invitee.last_name = None
            invitee.email = f"{invitee.uuid[:8]}@deleted.calendly.com"
            invitee.questions_and_answers = []
            invitee.updated_at = timezone.now()
            invitee.save(
                update_fields=[
                    "name",
                    "first_name",
                    "last_name",
                    "email",
                    "questions_and_answers",
                    "canceled_by",
                    "updated_at",
                ]
            )
            erased += 1
        scrub.deliveries_scrub(provider=Delivery.Provider.CALENDLY, values=values, mask="[deleted]")
    return erased


def fault_take() -> Fault | None:
    """Use up one injected fault, if any is armed (safe under concurrency)."""
    while True:
        fault = Fault.objects.filter(remaining__gt=0).order_by("id").first()
        if fault is None:
            return None
        if Fault.objects.filter(pk=fault.pk, remaining=fault.remaining).update(
            remaining=fault.remaining - 1
        ):
            return fault


def fault_arm(*, status: int = 429, count: int = 1, retry_after: int = 1) -> Fault:
    """Answer the next ``count`` API requests with ``status``."""
    Fault.objects.filter(remaining__gt=0).update(remaining=0)
    return Fault.objects.create(status=status, remaining=count, retry_after=retry_after)
