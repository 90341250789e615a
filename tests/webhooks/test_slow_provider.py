"""A slow Stripe holds nothing: the real handler waits on the sandbox with no
transaction open, and another worker's event goes through meanwhile.

Two clients pay; both ``checkout.session.completed`` deliveries are stored (with a
worker, the endpoint only stores). The Stripe sandbox is armed to answer its next
request late (``slowdown_arm``). Two threads play two workers: the first takes the
late answer inside the real handler, the second processes the other event while the
first still waits. Meanwhile no connection to the database sits idle in a transaction
(before, the handler ran inside the transaction that held the inbox row's lock).
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from sandbox.stripe_sandbox import services as stripe_sandbox
from sandbox.stripe_sandbox.models import Slowdown
from tests.bookings.world import Slot, World, world
from tests.support.activity import idle_in_transaction
from webhooks import services
from webhooks.models import WebhookEvent

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.connections,
    pytest.mark.django_db(transaction=True),
]
__all__ = ["world"]

LATE_SECONDS = 4.0


def _paid_and_stored(world: World, hours_ahead: float) -> tuple[Slot, int]:
    slot = world.book(hours_ahead=hours_ahead)
    assert world.pay(slot).status_code == 303  # paid at Stripe; the client never comes back
    world.deliver("checkout.session.completed")
    event = WebhookEvent.objects.filter(event_type="checkout.session.completed").latest("id")
    assert event.status == WebhookEvent.Status.RECEIVED  # stored; the relay would publish it
    return slot, event.pk


def _worker(pk: int, outcomes: dict[int, tuple[str | None, float]]) -> None:
    started = time.monotonic()
    try:
        outcomes[pk] = (services.event_process(pk=pk), time.monotonic() - started)
    finally:
        connection.close()


def test_a_slow_stripe_holds_no_transaction_and_the_other_event_flows(
    world: World, broker_down: None
) -> None:
    slow_slot, slow = _paid_and_stored(world, hours_ahead=72)
    other_slot, other = _paid_and_stored(world, hours_ahead=96)
    stripe_sandbox.slowdown_arm(seconds=LATE_SECONDS, count=1)

    outcomes: dict[int, tuple[str | None, float]] = {}
    first = threading.Thread(target=_worker, args=(slow, outcomes))
    first.start()
    deadline = time.monotonic() + 10
    while Slowdown.objects.filter(remaining__gt=0).exists():  # until the late answer is taken
        assert time.monotonic() < deadline, "the first worker never asked Stripe"
        time.sleep(0.02)
    second = threading.Thread(target=_worker, args=(other, outcomes))
    second.start()

    held: list[str] = []
    while first.is_alive():
        held += idle_in_transaction(longer_than=1.0)
        time.sleep(0.1)
    second.join(30)
    first.join(30)

    assert held == []
    assert outcomes[other][0] == WebhookEvent.Status.PROCESSED
    assert outcomes[other][1] < LATE_SECONDS, outcomes  # it did not wait behind the slow one
    assert outcomes[slow][0] == WebhookEvent.Status.PROCESSED
    assert outcomes[slow][1] >= LATE_SECONDS
    assert (slow_slot.booking.status, other_slot.booking.status) == ("confirmed", "confirmed")
