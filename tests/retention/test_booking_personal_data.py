"""Booking personal data: anonymised a year after the appointment, booking kept."""

from __future__ import annotations

from datetime import timedelta

import pytest

from accounts.dsr import dsr_close, dsr_file
from audit import purges
from bookings.models import Booking
from payments.models import Payment, Refund
from tests.retention.conftest import START
from tests.retention.helpers import forecast, purge, purged_entries

RULE = "bookings.personal_data"
YEAR = timedelta(days=365)

pytestmark = pytest.mark.django_db


def _anonymised(booking: Booking) -> bool:
    booking.refresh_from_db()
    return (booking.invitee_name, booking.invitee_email, booking.answers) == (None, None, None)


def test_only_what_ended_a_year_ago_is_anonymised_and_the_booking_stays(world, clock) -> None:
    old = world.booking(ended=START - YEAR - timedelta(minutes=1))
    edge = world.booking(ended=START - YEAR + timedelta(hours=2))
    upcoming = world.booking(ended=START + timedelta(days=3))
    before = Booking.objects.values().get(pk=old.pk)

    assert forecast(RULE) == purges.Forecast(due=1, held={}, next_due_at=edge.end_at + YEAR)
    assert purge(RULE) == 1
    assert _anonymised(old)
    after = Booking.objects.values().get(pk=old.pk)
    kept = ("reference", "start_at", "end_at", "price_amount", "currency", "status", "client_id")
    assert {name: after[name] for name in kept} == {name: before[name] for name in kept}
    assert not _anonymised(edge)
    assert not _anonymised(upcoming)
    assert purged_entries(RULE)[0].data["rows"] == 1

    clock.move_to(edge.end_at + YEAR - timedelta(seconds=1))
    assert purge(RULE) == 0
    assert not _anonymised(edge)
    clock.move_to(edge.end_at + YEAR)
    assert purge(RULE) == 1
    assert _anonymised(edge)
    assert forecast(RULE).next_due_at == upcoming.end_at + YEAR


def test_a_hold_postpones_anonymising_and_is_named(world, clock, staff) -> None:
    ended = START - YEAR - timedelta(days=1)
    disputed = world.booking(ended=ended)
    world.payment(disputed, created=ended - timedelta(days=2), status=Payment.Status.DISPUTED)
    refunding = world.booking(ended=ended)
    world.refund(
        world.payment(refunding, created=ended - timedelta(days=2)), status=Refund.Status.PENDING
    )
    asker = world.person("asker")
    asked = world.booking(ended=ended, client=asker)
    request = dsr_file(subject=asker, kind="access", actor=staff)
    free = world.booking(ended=ended)

    assert forecast(RULE) == purges.Forecast(
        due=1,
        held={"open dispute": 1, "pending refund": 1, "open data-subject request": 1},
    )
    assert purge(RULE) == 1
    assert _anonymised(free)
    assert not any(_anonymised(booking) for booking in (disputed, refunding, asked))
    assert purged_entries(RULE)[0].data["held"] == {
        "open dispute": 1,
        "pending refund": 1,
        "open data-subject request": 1,
    }

    # The request answered, the hold lifts and the next run catches up.
    dsr_close(request=request, actor=staff, status="rejected")
    assert purge(RULE) == 1
    assert _anonymised(asked)
