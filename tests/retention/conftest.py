"""A small world of records at known ages, and the clock to move past them."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

from accounts.models import Builder, User
from bookings.models import Booking, EventType, PolicyConsent
from payments.models import Payment, Refund, RefundApproval
from tests.bookings.factories import make_booking, make_event_type

# Every test starts here; records are made at times relative to it.
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Iterator[Any]:
    """The clock, stopped at START; ``clock.move_to(when)`` moves it."""
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


class World:
    """A builder selling one session, and its clients' bookings and payments."""

    def __init__(self) -> None:
        self.numbers = itertools.count(1)
        builder = Builder.objects.create(name="Ada's Workshop", slug="adas-workshop")
        self.event_type: EventType = make_event_type(builder)
        self.client = self.person("client")

    def person(self, name: str) -> User:
        return User.objects.create_user(email=f"{name}@client.example", password="x" * 20)

    def booking(self, *, ended: datetime, client: User | None = None, **fields: Any) -> Booking:
        number = next(self.numbers)
        return make_booking(
            self.event_type,
            client or self.client,
            number,
            start_at=ended - timedelta(hours=1),
            end_at=ended,
            answers='[{"question": "Topic?", "answer": "my divorce"}]',
            **fields,
        )

    def payment(self, booking: Booking, *, created: datetime, **fields: Any) -> Payment:
        number = next(self.numbers)
        values: dict[str, Any] = {
            "checkout_session_id": f"cs_test_{number}",
            "payment_intent_id": f"pi_test_{number}",
            "amount": booking.price_amount,
            "currency": booking.currency,
            "status": Payment.Status.PAID,
            "created_at": created,
            **fields,
        }
        return Payment.objects.create(booking=booking, **values)

    def refund(self, payment: Payment, **fields: Any) -> Refund:
        values: dict[str, Any] = {
            "amount": 1000,
            "reason": "goodwill",
            "status": Refund.Status.SUCCEEDED,
            **fields,
        }
        return Refund.objects.create(payment=payment, **values)

    def approval(self, payment: Payment, *, refund: Refund | None = None, **fields: Any) -> Any:
        requester = self.person(f"finance{next(self.numbers)}")
        values: dict[str, Any] = {
            "reference": uuid.uuid4(),
            "amount": 1000,
            "currency": payment.currency,
            "reason": "goodwill",
            "requested_by": requester,
            "status": RefundApproval.Status.PENDING,
            "refund": refund,
            **fields,
        }
        return RefundApproval.objects.create(payment=payment, **values)

    def consent(self, booking: Booking) -> PolicyConsent:
        return PolicyConsent.objects.create(
            user=booking.client,
            event_type=self.event_type,
            booking=booking,
            policy_version=1,
            policy=self.event_type.refund_policy,
            ip="203.0.113.0",
        )


@pytest.fixture
def world(db: None, clock: Any) -> World:
    return World()
