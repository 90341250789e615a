"""Refunds pending for over an hour: one alert per incident, one recovery."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import Builder, User
from core.alerts import open_alerts, run_watchdogs
from payments.models import Payment, Refund
from tests.bookings.factories import make_booking, make_event_type

from .conftest import subjects

pytestmark = pytest.mark.django_db(transaction=True)

REFUNDS = ["payments.refunds_stuck"]


@pytest.fixture
def payment(owner: User) -> Payment:
    event_type = make_event_type(Builder.objects.get(slug="olives-studio"))
    client = User.objects.create_user(email="clara@client.example", password="x" * 20)
    booking = make_booking(event_type, client)
    return Payment.objects.create(
        booking=booking,
        checkout_session_id="cs_test_stuck",
        payment_intent_id="pi_test_stuck",
        amount=booking.price_amount,
        currency=booking.currency,
        status=Payment.Status.PAID,
    )


def _refund(payment: Payment, *, age: timedelta, **fields: object) -> Refund:
    return Refund.objects.create(
        payment=payment,
        amount=1000,
        reason="goodwill",
        created_at=timezone.now() - age,
        **fields,
    )


def test_a_refund_pending_for_over_an_hour_is_one_alert_then_one_recovery(
    payment: Payment,
) -> None:
    _refund(payment, age=timedelta(minutes=30))  # young: still being retried
    stuck = _refund(payment, age=timedelta(hours=2), last_error="APIConnectionError")

    run_watchdogs(only=REFUNDS)
    run_watchdogs(only=REFUNDS)

    assert subjects() == ["[Slotpay alert] 1 refund pending for over an hour."]
    body = mail.outbox[0].body
    assert str(stuck.reference) in body
    assert "1 of them not accepted by Stripe yet" in body
    assert "clara" not in body.lower()  # the client stays out of the email

    Refund.objects.filter(pk=stuck.pk).update(
        status=Refund.Status.SUCCEEDED, stripe_refund_id="re_test_1"
    )
    run_watchdogs(only=REFUNDS)
    run_watchdogs(only=REFUNDS)

    assert subjects()[1:] == ["[Slotpay recovered] 1 refund pending for over an hour."]
    assert open_alerts() == []


def test_refunds_that_finished_or_failed_are_not_stuck(payment: Payment) -> None:
    _refund(payment, age=timedelta(days=2), status=Refund.Status.SUCCEEDED)
    _refund(payment, age=timedelta(days=2), status=Refund.Status.FAILED)

    assert run_watchdogs(only=REFUNDS).raised == []
