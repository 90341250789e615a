"""After-commit work goes through one transactional outbox: a broker that is down when
the change commits delays the work, never drops it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from config.celery import app as celery_app
from core import outbox
from core.models import OutboxMessage
from payments.models import Payment
from tests.bookings.world import World, world
from webhooks import services as webhooks
from webhooks.models import WebhookEvent

__all__ = ["world"]


def _time_passes() -> None:
    """The relay's next pass comes after a failed publish's claim has lapsed."""
    OutboxMessage.objects.filter(sent_at__isnull=True).update(
        available_at=timezone.now() - outbox.CLAIM_TIMEOUT - timedelta(seconds=1)
    )


@pytest.mark.django_db(transaction=True)
def test_a_checkout_lost_to_a_broker_outage_is_opened_when_it_returns(
    world: World, broker_down: None
) -> None:
    """The client picked a slot and left; ``invitee.created`` is processed while the
    broker is down. Before the outbox, "open Checkout" was logged and forgotten."""
    slot = world.book(come_back=False)
    world.deliver("invitee.created")
    [event] = WebhookEvent.objects.all()
    webhooks.event_process(pk=event.pk)  # the sweeper's job, with the broker down

    booking = slot.booking
    assert booking.status == "pending_payment"
    assert not Payment.objects.exists()
    [waiting] = OutboxMessage.objects.filter(task="bookings.tasks.start_checkout")
    assert waiting.sent_at is None
    assert waiting.last_error

    celery_app.conf.task_always_eager = True  # the broker is back
    _time_passes()
    assert outbox.relay() >= 1

    payment = Payment.objects.get(booking=booking)
    assert payment.status == "open"
    assert payment.checkout_url
    assert [m for m in mail.outbox if "Finish paying" in m.subject]
    assert outbox.relay() == 0  # sent once


@pytest.mark.django_db(transaction=True)
def test_a_checkout_queued_under_the_tasks_old_name_is_still_opened(
    world: World, broker_down: None
) -> None:
    """Rows written before the task moved from payments to bookings name it
    ``payments.tasks.start_checkout``: an alias in bookings.tasks still runs them."""
    import bookings.tasks  # noqa: F401 (a worker imports every app's tasks at start)

    slot = world.book(come_back=False)
    world.deliver("invitee.created")
    [event] = WebhookEvent.objects.all()
    webhooks.event_process(pk=event.pk)
    OutboxMessage.objects.filter(task="bookings.tasks.start_checkout").update(
        task="payments.tasks.start_checkout"
    )

    celery_app.conf.task_always_eager = True  # the broker is back
    _time_passes()
    assert outbox.relay() >= 1

    payment = Payment.objects.get(booking=slot.booking)
    assert payment.status == "open"
    assert payment.checkout_url
    assert [m for m in mail.outbox if "Finish paying" in m.subject]


@pytest.mark.django_db(transaction=True)
def test_work_rolled_back_with_its_transaction_is_never_sent() -> None:
    def enqueue_then_fail() -> None:
        with transaction.atomic():
            outbox.enqueue("core.tasks.send_mail", "t", "subject", "body", ["a@example.com"])
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        enqueue_then_fail()

    assert not OutboxMessage.objects.exists()
    assert mail.outbox == []


@pytest.mark.django_db(transaction=True)
def test_the_same_work_enqueued_twice_is_sent_once() -> None:
    with transaction.atomic():
        first = outbox.enqueue(
            "core.tasks.send_mail", "t", "s", "b", ["a@x.example"], dedup_key="k"
        )
        second = outbox.enqueue(
            "core.tasks.send_mail", "t", "s", "b", ["a@x.example"], dedup_key="k"
        )

    assert first is not None
    assert second is None
    assert len(mail.outbox) == 1


@pytest.mark.django_db(transaction=True)
def test_an_email_waits_out_a_broker_outage(broker_down: None) -> None:
    outbox.enqueue("core.tasks.send_mail", "t", "Your booking", "Hello", ["c@client.example"])
    assert mail.outbox == []

    celery_app.conf.task_always_eager = True
    _time_passes()
    outbox.relay()

    assert [m.subject for m in mail.outbox] == ["Your booking"]
    # Done rows are purged after a day; others never.
    OutboxMessage.objects.update(done_at=timezone.now() - timedelta(days=2))
    assert outbox.purge() == 1


@pytest.mark.django_db(transaction=True)
def test_a_task_run_to_an_end_marks_its_row_done_and_is_never_sent_again(settings) -> None:
    outbox.enqueue("core.tasks.send_mail", "t", "Your booking", "Hello", ["c@client.example"])

    [message] = OutboxMessage.objects.all()
    assert (message.sent_at is not None, message.done_at is not None) == (True, True)
    assert message.attempts == 1
    # Long after the redelivery window: done, so the relay leaves it.
    OutboxMessage.objects.update(
        sent_at=timezone.now() - timedelta(seconds=settings.OUTBOX_REDELIVER_AFTER_SECONDS + 1)
    )
    assert outbox.relay() == 0
    assert len(mail.outbox) == 1


@pytest.mark.django_db(transaction=True)
def test_a_task_sent_but_never_run_is_sent_again_after_the_window(settings) -> None:
    """Its message died with a worker or with Redis: nothing marked it done."""
    outbox.enqueue("core.tasks.send_mail", "t", "Your booking", "Hello", ["c@client.example"])
    mail.outbox.clear()
    window = timedelta(seconds=settings.OUTBOX_REDELIVER_AFTER_SECONDS)
    OutboxMessage.objects.update(done_at=None, sent_at=timezone.now() - window / 2)
    assert outbox.relay() == 0  # still within the window: it may be waiting in a queue
    assert outbox.pending_count() == 1

    OutboxMessage.objects.update(sent_at=timezone.now() - window - timedelta(seconds=1))
    assert outbox.relay() == 1

    [message] = OutboxMessage.objects.all()
    assert message.attempts == 2
    assert message.done_at is not None
    assert [m.subject for m in mail.outbox] == ["Your booking"]
    assert outbox.pending_count() == 0


@pytest.mark.django_db
def test_only_an_outbox_task_id_marks_a_row_done() -> None:
    message = outbox.enqueue("core.tasks.send_mail", "t", "s", "b", ["a@x.example"], countdown=60)
    assert message is not None

    for task_id in (None, "", "3f2a-uuid", "outbox:", "outbox:abc:1", f"other:{message.pk}:x"):
        assert outbox.task_ran(task_id) is False
    assert outbox.task_ran(f"outbox:{message.pk}:0a1b") is True
    assert outbox.task_ran(f"outbox:{message.pk}:0a1b") is False  # done once
    message.refresh_from_db()
    assert message.done_at is not None


@pytest.mark.django_db
def test_the_arguments_are_encrypted_at_rest() -> None:
    from django.db import connection

    outbox.enqueue("core.tasks.send_mail", "t", "s", "body", ["private@client.example"])
    with connection.cursor() as cursor:
        cursor.execute("SELECT payload FROM core_outboxmessage")
        [(stored,)] = cursor.fetchall()

    assert "private@client.example" not in stored
