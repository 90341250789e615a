"""Cancels and refunds racing each other on PostgreSQL: one refund, never a 500.

Each request runs in its own thread with its own database connection, against the
live server's sandbox for Calendly and Stripe, as a client's double clicks (or a
retrying app) would.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection, transaction

from bookings.models import Booking
from payments import stripe_gateway
from payments.models import Payment, Refund
from payments.services import RefundRefused, refund_request, refund_submit
from tests.bookings.world import PRICE, World, world
from tests.support.concurrency import together

__all__ = ["world"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def _paid(world: World) -> Booking:
    slot = world.book()
    world.pay(slot)
    world.deliver()
    world.retry_waiting()
    assert slot.booking.status == Booking.Status.CONFIRMED
    return slot.booking


@pytest.mark.connections
def test_eight_parallel_cancels_give_one_refund_and_no_error(world: World) -> None:
    booking = _paid(world)

    def cancel(i: int) -> Any:
        browser = world.browser(world.client_user)
        if i % 2:
            return browser.post(f"/api/v1/bookings/{booking.reference}/cancel/")
        return browser.post(f"/bookings/{booking.reference}/cancel/", follow=True)

    responses = together(8, cancel)

    assert [r for r in responses if isinstance(r, Exception)] == []
    assert sorted({r.status_code for r in responses}) in ([200], [200, 409])
    api = [r.json() for r in responses[1::2] if r.status_code == 200]
    assert {body["refund_amount"] for body in api} <= {PRICE}
    pages = list(responses[0::2])
    assert all(b"80.00" in page.content or b"is canceled" in page.content for page in pages)
    world.settle_everything()
    assert list(Refund.objects.values_list("amount", "status")) == [(PRICE, "succeeded")]
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.CANCELED
    assert world.dead_or_failed() == []


@pytest.mark.connections
def test_parallel_cancels_after_stripe_refused_the_first_refund(world: World) -> None:
    """Refunded in full in the Stripe dashboard before its webhook came: the first
    cancel's refund is refused by Stripe (``failed``), and no other cancel may then
    insert the same decision again (that was an IntegrityError, a 500)."""
    booking = _paid(world)
    payment = Payment.objects.get(booking=booking)
    stripe_gateway.create_refund(
        refund_ref="dashboard", payment_intent=payment.payment_intent_id, amount=PRICE
    )

    def cancel(i: int) -> Any:
        return world.browser(world.client_user).post(
            f"/api/v1/bookings/{booking.reference}/cancel/"
        )

    responses = together(8, cancel)

    assert [r for r in responses if isinstance(r, Exception)] == []
    assert {r.status_code for r in responses} <= {200, 409}
    ours = Refund.objects.filter(external=False)
    assert list(ours.values_list("amount", "status")) == [(PRICE, "failed")]
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.CANCELED


def test_two_partial_refunds_racing_for_more_than_remains_give_one_refused(
    world: World,
) -> None:
    booking = _paid(world)

    def refund(i: int) -> Any:
        return refund_request(
            booking_id=booking.pk, amount=6000, reason=f"goodwill {i}", actor="test"
        )

    results = together(2, refund)

    refused = [r for r in results if isinstance(r, RefundRefused)]
    made = [r for r in results if isinstance(r, Refund)]
    assert (len(made), len(refused)) == (1, 1), results
    assert "Only 2000 EUR" in str(refused[0])
    assert Payment.objects.get(booking=booking).refundable() == PRICE - 6000


@pytest.mark.connections
def test_eight_parallel_submissions_of_one_refund_refund_once(world: World) -> None:
    """Every cancel after the first finds the first's refund still pending and would
    send it to Stripe too: only one may, or Stripe refuses the copies ("already
    refunded") and the refund the client got is recorded as failed."""
    booking = _paid(world)
    with transaction.atomic():  # created, not sent: as between the commit and the call
        refund = refund_request(
            booking_id=booking.pk, amount=PRICE, reason="canceled", actor="test"
        )

    def submit(i: int) -> Any:
        return refund_submit(refund=Refund.objects.get(pk=refund.pk), actor="test")

    results = together(8, submit)

    assert [r for r in results if isinstance(r, Exception)] == []
    refund.refresh_from_db()
    assert (refund.status, refund.last_error) == ("succeeded", "")
    payment = Payment.objects.get(booking=booking)
    charge = stripe_gateway.retrieve_charge(payment.charge_id)
    assert [r.amount for r in charge.refunds] == [PRICE]


def _waiting_for_locks() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0]


def test_cancels_queued_on_the_payment_lock_make_one_partial_refund(world: World) -> None:
    """The race made deterministic: two cancels inside the 50 % window both get past
    every check made before the payment's lock while another transaction holds it.
    Once it is released, the second must find the first's refund (it used to insert
    the same reference again: an IntegrityError, a 500)."""
    slot = world.book(hours_ahead=30)
    world.pay(slot)
    world.deliver()
    world.retry_waiting()
    booking = slot.booking
    assert booking.status == Booking.Status.CONFIRMED

    def cancel(i: int) -> Any:
        return world.browser(world.client_user).post(
            f"/api/v1/bookings/{booking.reference}/cancel/"
        )

    results: list[Any] = []
    with transaction.atomic():
        Payment.objects.select_for_update().get(booking=booking)
        runner = threading.Thread(target=lambda: results.extend(together(2, cancel)))
        runner.start()
        for _ in range(400):  # both queued behind a lock, or both done
            if _waiting_for_locks() >= 2 or not runner.is_alive():
                break
            threading.Event().wait(0.05)
    runner.join(timeout=60)

    assert [r for r in results if isinstance(r, Exception)] == []
    assert {r.status_code for r in results} <= {200, 409}, [r.content[:300] for r in results]
    world.settle_everything()
    assert list(Refund.objects.values_list("amount", "status")) == [(PRICE // 2, "succeeded")]
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.CANCELED
