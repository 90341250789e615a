"""Payment records: deleted 7 years after the payment, with what hangs on it; the
booking (already anonymised) and its consents follow once its payments are gone."""

from __future__ import annotations

from datetime import timedelta

import pytest

from accounts.dsr import dsr_file
from audit import purges
from bookings.models import Booking, PolicyConsent
from payments.models import Dispute, Payment, Refund, RefundApproval
from tests.retention.conftest import START
from tests.retention.helpers import forecast, purge

SEVEN_YEARS = timedelta(days=7 * 365)

pytestmark = pytest.mark.django_db


def _old_sale(world, *, age: timedelta, **payment_fields) -> tuple[Booking, Payment]:
    """A booking whose payment was made ``age`` ago, the session two days later."""
    created = START - age
    booking = world.booking(ended=created + timedelta(days=2))
    return booking, world.payment(booking, created=created, **payment_fields)


def test_a_payment_goes_with_its_refunds_approvals_and_disputes(world, clock) -> None:
    booking, payment = _old_sale(world, age=SEVEN_YEARS + timedelta(days=1))
    refund = world.refund(payment)
    decider = world.person("decider")
    world.approval(payment, refund=refund, status="approved", decided_by=decider)
    world.approval(payment, status="rejected")
    Dispute.objects.create(
        stripe_dispute_id="dp_test_1",
        payment=payment,
        amount=payment.amount,
        currency=payment.currency,
        status=Dispute.Status.WON,
    )
    _, young = _old_sale(world, age=SEVEN_YEARS - timedelta(days=1))
    world.refund(young)

    assert forecast("payments.records") == purges.Forecast(
        due=1, held={}, next_due_at=young.created_at + SEVEN_YEARS
    )
    assert purge("payments.records") == 1
    assert list(Payment.objects.all()) == [young]
    assert list(Refund.objects.values_list("payment", flat=True)) == [young.pk]
    assert not RefundApproval.objects.exists()
    assert not Dispute.objects.exists()
    # The booking waits for its own rule (its appointment was after the payment).
    assert Booking.objects.filter(pk=booking.pk).exists()


def test_held_payments_stay_and_the_report_names_the_hold(world, clock, staff) -> None:
    age = SEVEN_YEARS + timedelta(days=30)
    _, disputed = _old_sale(world, age=age, status=Payment.Status.DISPUTED)
    _, refunding = _old_sale(world, age=age)
    world.refund(refunding, status=Refund.Status.REQUIRES_ACTION)
    _, approving = _old_sale(world, age=age)
    world.approval(approving)
    asker = world.person("asker")
    asked = world.booking(ended=START - age + timedelta(days=2), client=asker)
    world.payment(asked, created=START - age)
    dsr_file(subject=asker, kind="erasure", actor=staff)
    _, free = _old_sale(world, age=age)

    assert forecast("payments.records") == purges.Forecast(
        due=1,
        held={"open dispute": 1, "pending refund": 2, "open data-subject request": 1},
    )
    assert purge("payments.records") == 1
    assert not Payment.objects.filter(pk=free.pk).exists()
    assert Payment.objects.count() == 4

    # The dispute settled (won): the payment is paid again, and goes on the next run.
    Payment.objects.filter(pk=disputed.pk).update(status=Payment.Status.PAID)
    assert purge("payments.records") == 1
    assert not Payment.objects.filter(pk=disputed.pk).exists()


def test_the_booking_and_its_consents_go_once_its_payments_have(world, clock) -> None:
    booking, _ = _old_sale(world, age=SEVEN_YEARS + timedelta(days=10))
    consent = world.consent(booking)
    unpaid = world.booking(ended=START - SEVEN_YEARS - timedelta(days=1))
    # Rescheduled from an appointment still inside its seven years: both wait.
    late = world.booking(ended=START - SEVEN_YEARS + timedelta(days=5))
    moved = world.booking(ended=START - SEVEN_YEARS - timedelta(days=1))
    Booking.objects.filter(pk=late.pk).update(rescheduled_to=moved)
    # Rescheduled from an older appointment: both go, the older first.
    older = world.booking(ended=START - SEVEN_YEARS - timedelta(days=40))
    successor = world.booking(ended=START - SEVEN_YEARS - timedelta(days=2))
    Booking.objects.filter(pk=older.pk).update(rescheduled_to=successor)
    _, recent_payment = _old_sale(world, age=SEVEN_YEARS - timedelta(days=1))

    # In a run, payments.records goes first: the booking's payment is then gone.
    assert [each.name for each in purges.rules()].index("payments.records") < [
        each.name for each in purges.rules()
    ].index("bookings.records")
    due = forecast("bookings.records").due
    assert due == 4
    done = purges.run(rules=["payments.records", "bookings.records"], batch_size=1)
    assert done == {"payments.records": 1, "bookings.records": 4}
    gone = {booking.pk, unpaid.pk, older.pk, successor.pk}
    assert not Booking.objects.filter(pk__in=gone).exists()
    assert not PolicyConsent.objects.filter(pk=consent.pk).exists()
    assert set(Booking.objects.values_list("pk", flat=True)) == {
        late.pk,
        moved.pk,
        recent_payment.booking_id,
    }

    clock.move_to(late.end_at + SEVEN_YEARS)
    assert purge("bookings.records") == 2
