"""A cancellation made on Calendly is applied whole or not at all: the booking
cancelled, the policy's refund and the client's email commit together.

Cancelled in a commit of its own, a handler that failed before its refund (here: a
lock it waited for too long, as a worker killed at that moment would) left a
cancelled booking whose next attempt found nothing to do: the money and the email
were lost for good (an outside review reproduced it on the real stack).
"""

from __future__ import annotations

import threading

import pytest
from django.core import mail
from django.db import connection, transaction

from config.celery import app as celery_app
from payments.models import Payment, Refund
from sandbox.calendly_sandbox import services as calendly_sandbox
from tests.bookings.test_webhook_orders import CANCELED, left_after_booking, paid
from tests.bookings.world import PRICE, World, world
from webhooks import services as webhooks
from webhooks.models import WebhookEvent

__all__ = ["world"]

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.connections,
    pytest.mark.django_db(transaction=True),
]


def _hold(payment: Payment, locked: threading.Event, release: threading.Event) -> None:
    """Someone else (a Finance refund, a dispute) holds the payment's row lock."""
    try:
        with transaction.atomic():
            Payment.objects.select_for_update().get(pk=payment.pk)
            locked.set()
            release.wait(30)
    finally:
        connection.close()


def test_a_cancellation_that_fails_before_its_refund_is_undone_and_then_applied_whole(
    world: World, broker_down: None
) -> None:
    celery_app.conf.task_always_eager = True  # the booking and payment go through at once
    slot = paid(world, left_after_booking(world))
    celery_app.conf.task_always_eager = False  # with a worker: the endpoint only stores
    calendly_sandbox.invitee_cancel(invitee=slot.invitee, reason="Ill", urls=world.site.urls)
    world.deliver(CANCELED)
    event = WebhookEvent.objects.get(event_type=CANCELED)
    mail.outbox.clear()

    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold, args=(slot.payment, locked, release))
    holder.start()
    assert locked.wait(10)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '300ms'")
        assert webhooks.event_process(pk=event.pk) == WebhookEvent.Status.FAILED
    finally:
        release.set()
        holder.join(30)
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")

    # Nothing half done: still confirmed, no refund, no email.
    assert slot.booking.status == "confirmed"
    assert not Refund.objects.exists()

    celery_app.conf.task_always_eager = True  # the broker is back: emails go out
    assert webhooks.event_process(pk=event.pk, force=True) == WebhookEvent.Status.PROCESSED
    world.deliver()
    world.retry_waiting()
    assert slot.booking.status == "canceled"
    [refund] = Refund.objects.all()
    assert (refund.amount, refund.status) == (PRICE, "succeeded")
    assert len([m for m in mail.outbox if "is canceled" in m.subject]) == 1
