"""A booking paid and never come back to: its ``checkout.session.completed`` alone
confirms it, asking Stripe once (the session with its PaymentIntent and latest charge
expanded), and the event's audit entries are in the chain when it is processed."""

from __future__ import annotations

import pytest
from django.core import mail

from audit.models import AuditEntry
from config import outgoing
from tests.bookings.world import World, world

__all__ = ["world"]

pytestmark = pytest.mark.django_db(transaction=True)

READS = ("checkout.sessions.retrieve", "payment_intents.retrieve", "charges.retrieve")


def test_the_completed_event_reads_the_session_its_intent_and_charge_at_once(
    world: World,
) -> None:
    slot = world.book()
    assert world.pay(slot).status_code == 303
    before = {operation: outgoing.calls("stripe", operation) for operation in READS}
    mail.outbox.clear()

    world.deliver("checkout.session.completed")

    made = {op: outgoing.calls("stripe", op) - before[op] for op in READS}
    assert made == {
        "checkout.sessions.retrieve": 1,
        "payment_intents.retrieve": 0,
        "charges.retrieve": 0,
    }
    assert world.state(slot) == {"booking": "confirmed", "payments": ["paid"], "refunds": []}
    payment = slot.payment
    # The charge's facts came with the session.
    assert payment.charge_id.startswith("ch_")
    assert (payment.card_brand, payment.card_last4) == ("visa", "4242")
    assert payment.receipt_url
    assert [message.subject for message in mail.outbox] == [
        f"Your booking with {world.builder.name} is confirmed"
    ]
    # Integrated once the event was processed, not left to the beat task.
    assert not AuditEntry.objects.filter(sequence__isnull=True).exists()
    assert AuditEntry.objects.filter(action="bookings.booking.confirmed").count() == 1


def test_a_redelivery_changes_nothing_and_still_reads_once(world: World) -> None:
    slot = world.book()
    assert world.pay(slot).status_code == 303
    world.deliver("checkout.session.completed")
    before = {operation: outgoing.calls("stripe", operation) for operation in READS}
    mail.outbox.clear()

    world.redeliver_everything()

    assert (
        outgoing.calls("stripe", "payment_intents.retrieve") == before["payment_intents.retrieve"]
    )
    assert outgoing.calls("stripe", "charges.retrieve") == before["charges.retrieve"]
    assert world.state(slot) == {"booking": "confirmed", "payments": ["paid"], "refunds": []}
    assert mail.outbox == []
    assert AuditEntry.objects.filter(action="bookings.booking.confirmed").count() == 1
