"""The booking state machine: legal moves, refused moves, repeats, audit entries."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import Builder
from audit.models import AuditEntry
from bookings.models import Booking, EventType, IllegalTransition, PolicyConsent
from tests.bookings.factories import make_booking, make_event_type

pytestmark = pytest.mark.django_db
Status = Booking.Status


@pytest.fixture
def event_type(owner) -> EventType:
    return make_event_type(Builder.objects.get(slug="olives-studio"))


@pytest.fixture
def booking(event_type, stranger) -> Booking:
    return make_booking(event_type, stranger)


def transitions() -> list[tuple[str, str]]:
    return [
        (e.data["from"], e.data["to"])
        for e in AuditEntry.objects.filter(action__startswith="bookings.booking.").order_by(
            "sequence"
        )
    ]


def test_paid_then_completed(booking: Booking) -> None:
    assert booking.confirm(actor="webhooks.stripe") is True
    assert booking.complete(actor="bookings.tasks") is True
    booking.refresh_from_db()
    assert booking.status == Status.COMPLETED
    assert transitions() == [("pending_payment", "confirmed"), ("confirmed", "completed")]
    entry = AuditEntry.objects.filter(action="bookings.booking.completed").get()
    assert (entry.category, entry.actor_id, entry.target_id) == (
        "transaction",
        "bookings.tasks",
        str(booking.pk),
    )


def test_repeating_a_move_is_a_no_op(booking: Booking) -> None:
    assert booking.confirm(actor="webhooks.stripe") is True
    assert booking.confirm(actor="webhooks.stripe") is False
    assert Booking.objects.get(pk=booking.pk).confirm(actor="redirect") is False
    assert len(transitions()) == 1


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        ([], Status.CANCELED),  # an unpaid booking expires, it is not canceled
        ([], Status.COMPLETED),
        ([], Status.NO_SHOW),
        ([Status.EXPIRED], Status.CONFIRMED),  # a late payment cannot revive it
        ([Status.CONFIRMED], Status.EXPIRED),
        ([Status.CONFIRMED, Status.CANCELED], Status.CONFIRMED),
        ([Status.CONFIRMED, Status.COMPLETED], Status.CANCELED),
        ([Status.CONFIRMED, Status.NO_SHOW], Status.COMPLETED),
    ],
)
def test_illegal_moves_are_refused_and_change_nothing(booking, path, refused) -> None:
    for status in path:
        booking.transition(status, actor="test")
    before = transitions()
    with pytest.raises(IllegalTransition) as caught:
        booking.transition(refused, actor="test")
    assert caught.value.to == refused
    booking.refresh_from_db()
    assert booking.status == (path[-1] if path else Status.PENDING_PAYMENT)
    assert transitions() == before


@pytest.mark.parametrize("paid_state", [Status.CONFIRMED, Status.COMPLETED, Status.NO_SHOW])
def test_a_dispute_can_follow_any_paid_state(booking, paid_state) -> None:
    booking.confirm(actor="test")
    booking.transition(paid_state, actor="test")
    assert booking.dispute(actor="webhooks.stripe", reason="fraudulent") is True
    assert AuditEntry.objects.get(action="bookings.booking.disputed").data["reason"] == (
        "fraudulent"
    )


def test_unknown_status_is_a_programming_error(booking) -> None:
    with pytest.raises(ValueError, match="unknown booking status"):
        booking.transition("lost", actor="test")


def test_reschedule_links_the_successor_once(booking, event_type, stranger) -> None:
    successor = make_booking(event_type, stranger, number=2)
    booking.confirm(actor="test")
    assert booking.reschedule(successor, actor="webhooks.calendly") is True
    assert booking.reschedule(successor, actor="webhooks.calendly") is False
    booking.refresh_from_db()
    assert (booking.status, booking.rescheduled_to_id) == (Status.RESCHEDULED, successor.pk)
    assert successor.rescheduled_from == booking
    other = make_booking(event_type, stranger, number=3)
    with pytest.raises(IllegalTransition):
        booking.reschedule(other, actor="webhooks.calendly")
    with pytest.raises(ValueError, match="itself"):
        other.reschedule(other, actor="test")


def test_a_stale_instance_sees_the_current_state(booking) -> None:
    stale = Booking.objects.get(pk=booking.pk)
    booking.confirm(actor="test")
    booking.cancel(actor="client", reason="cannot make it")
    with pytest.raises(IllegalTransition):
        stale.expire(actor="bookings.tasks")  # it was pending when loaded; not any more
    assert stale.status == Status.CANCELED


@pytest.mark.connections
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_confirmations_apply_once(event_type, stranger) -> None:
    booking = make_booking(event_type, stranger)
    results: list[bool] = []
    start = threading.Barrier(4)

    def confirm() -> None:
        start.wait(5)
        try:
            results.append(Booking.objects.get(pk=booking.pk).confirm(actor="race"))
        finally:
            connection.close()

    threads = [threading.Thread(target=confirm) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, False, False, True]
    assert AuditEntry.objects.filter(action="bookings.booking.confirmed").count() == 1


def test_personal_data_is_encrypted_at_rest(booking) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT invitee_name, invitee_email FROM bookings_booking WHERE id = %s",
            [booking.pk],
        )
        name, email = cursor.fetchone()
    assert "Clara" not in name
    assert "client.example" not in email
    assert Booking.objects.get(pk=booking.pk).invitee_email == "clara@client.example"


def test_policy_changes_raise_the_version_and_consents_keep_what_was_shown(
    event_type, stranger, staff
) -> None:
    consent = PolicyConsent.objects.create(
        user=stranger,
        event_type=event_type,
        policy_version=event_type.refund_policy_version,
        policy=event_type.refund_policy,
    )
    stricter = [{"min_notice_hours": 72, "percent": 100}, {"min_notice_hours": 0, "percent": 0}]
    assert event_type.set_refund_policy(stricter, actor=staff) is True
    assert event_type.set_refund_policy(stricter, actor=staff) is False
    event_type.refresh_from_db()
    assert (event_type.refund_policy_version, event_type.refund_policy) == (2, stricter)
    consent.refresh_from_db()
    assert (consent.policy_version, consent.policy[0]["min_notice_hours"]) == (1, 48)
    entry = AuditEntry.objects.get(action="bookings.event_type.policy_changed")
    assert entry.data["version"] == 2


def test_end_must_follow_start(event_type, stranger) -> None:
    from django.db import IntegrityError

    start = timezone.now()
    with pytest.raises(IntegrityError):
        Booking.objects.create(
            builder=event_type.builder,
            event_type=event_type,
            calendly_invitee_uri="https://api.calendly.com/scheduled_events/X/invitees/Y",
            calendly_event_uri="https://api.calendly.com/scheduled_events/X",
            start_at=start,
            end_at=start,
        )


def test_bookings_long_over_are_completed_and_a_late_no_show_still_counts(owner, settings):
    from datetime import timedelta

    from django.utils import timezone

    from bookings import services
    from tests.bookings.factories import make_booking, make_event_type

    event_type = make_event_type(owner.builders.get())
    now = timezone.now()
    over = make_booking(event_type, None, 11, start_at=now - timedelta(hours=60))
    recent = make_booking(event_type, None, 12, start_at=now - timedelta(hours=3))
    unpaid = make_booking(event_type, None, 13, start_at=now - timedelta(hours=60))
    for booking in (over, recent):
        booking.confirm(actor="test")

    assert services.complete_past() == 1
    assert [
        b.status
        for b in Booking.objects.filter(pk__in=[over.pk, recent.pk, unpaid.pk]).order_by("pk")
    ] == [Status.COMPLETED, Status.CONFIRMED, Status.PENDING_PAYMENT]
    over.refresh_from_db()
    assert over.mark_no_show(actor="calendly") is True
    assert services.complete_past() == 0
