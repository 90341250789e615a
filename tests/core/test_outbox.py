"""After-commit work goes through one transactional outbox: a broker that is down when
the change commits delays the work, never drops it."""

from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import transaction
from django.utils import timezone

from config.celery import app as celery_app
from core import alerts, outbox
from core.models import Alert, OutboxMessage
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


@pytest.mark.django_db(transaction=True)
def test_a_task_that_raises_is_sent_again_after_a_backoff(settings) -> None:
    """The mail server refuses: the row goes back to the relay, later, and the email
    goes once it accepts."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # nothing listens
    outbox.enqueue("core.tasks.send_mail", "t", "Your booking", "Hello", ["c@client.example"])

    [message] = OutboxMessage.objects.all()
    assert (message.done_at, message.sent_at, message.publish_id) == (None, None, "")
    assert message.last_error == "ConnectionRefusedError"
    assert message.available_at > timezone.now() + outbox.RETRY_BASE - timedelta(seconds=5)
    assert outbox.relay() == 0  # not before its backoff

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    OutboxMessage.objects.update(available_at=timezone.now() - outbox.CLAIM_TIMEOUT)
    assert outbox.relay() == 1
    message.refresh_from_db()
    assert (message.done_at is not None, message.attempts, message.last_error) == (True, 2, "")
    assert [m.subject for m in mail.outbox] == ["Your booking"]


@pytest.mark.django_db(transaction=True)
def test_a_task_still_failing_after_the_last_attempt_is_given_up_and_logged(
    settings, caplog
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9
    message = outbox.enqueue("core.tasks.send_mail", "t", "s", "b", ["a@x.example"], countdown=1)
    assert message is not None
    OutboxMessage.objects.update(
        attempts=outbox.MAX_ATTEMPTS - 1, available_at=timezone.now() - outbox.CLAIM_TIMEOUT
    )

    assert outbox.relay() == 1
    assert [r.message for r in caplog.records if r.levelname == "ERROR"] == ["outbox.given_up"]
    assert outbox.relay() == 0  # never again
    assert outbox.pending_count() == 1  # kept for a person
    assert outbox.purge() == 0


@pytest.mark.django_db(transaction=True)
def test_given_up_tasks_are_an_alert_until_outbox_retry_sends_them(settings) -> None:
    """The watchdog keeps given-up rows in front of the people on call (names of tasks
    and errors, never an address); ``outbox_retry`` sends them again once the cause is
    fixed, and the alert clears on the next pass."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9
    settings.ALERT_EMAILS = ["ops@slotpay.example"]
    outbox.enqueue("core.tasks.send_mail", "t", "s", "b", ["kept@client.example"], countdown=1)
    OutboxMessage.objects.update(
        attempts=outbox.MAX_ATTEMPTS - 1, available_at=timezone.now() - outbox.CLAIM_TIMEOUT
    )
    assert outbox.relay() == 1  # the last attempt: given up

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert alerts.run_watchdogs(only=["outbox.given_up"]).raised == ["outbox.given_up"]
    [alert] = Alert.objects.filter(key="outbox.given_up")
    assert alert.summary == (
        f"1 after-commit task given up after {outbox.MAX_ATTEMPTS} attempts "
        "(core.tasks.send_mail: 1)."
    )
    [email] = mail.outbox
    assert "ConnectionRefusedError: 1" in email.body
    assert "kept@client.example" not in email.subject + email.body

    out = StringIO()
    call_command("outbox_retry", "--dry-run", stdout=out)
    [listed, count, dry] = out.getvalue().splitlines()
    assert re.fullmatch(
        r"\d+ core\.tasks\.send_mail made \d{4}-\d\d-\d\d \d\d:\d\d UTC, "
        r"last error ConnectionRefusedError",
        listed,
    )
    assert "kept@client.example" not in out.getvalue()
    assert (count, dry) == ("core.tasks.send_mail: 1", "Dry run: nothing sent.")
    assert outbox.given_up().count() == 1
    with pytest.raises(CommandError, match="No chosen task is given up"):
        call_command("outbox_retry", "--task", "core.tasks.refund", stdout=StringIO())

    out = StringIO()
    call_command("outbox_retry", "--task", "core.tasks.send_mail", stdout=out)
    assert out.getvalue().splitlines()[0] == "core.tasks.send_mail: 1"
    assert outbox.relay() == 1  # the mail server is back
    assert not outbox.given_up().exists()
    assert "kept@client.example" in [to for m in mail.outbox for to in m.to]
    assert alerts.run_watchdogs(only=["outbox.given_up"]).cleared == ["outbox.given_up"]
    with pytest.raises(CommandError, match="No task is given up"):
        call_command("outbox_retry", stdout=StringIO())


@pytest.mark.django_db
def test_only_the_current_publish_runs_the_task() -> None:
    """A copy of an earlier publish (Redis handing back an old message, a backlog that
    outlasted the redelivery window) does nothing; nor does one for a row that is gone."""
    message = outbox.enqueue("core.tasks.send_mail", "t", "s", "b", ["a@x.example"], countdown=60)
    assert message is not None
    OutboxMessage.objects.filter(pk=message.pk).update(publish_id="current")

    assert outbox.run(message.pk, "earlier") is False
    assert outbox.run(message.pk + 1000, "current") is False
    assert mail.outbox == []
    assert outbox.run(message.pk, "current") is True
    assert outbox.run(message.pk, "current") is False  # done: a second copy does nothing
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_rows_sent_by_an_earlier_release_are_never_sent_again(settings) -> None:
    """Sent before publish ids: nothing says whether they ran, so they are left as they
    were, and purged after a day."""
    message = outbox.enqueue("core.tasks.send_mail", "t", "s", "b", ["a@x.example"], countdown=60)
    assert message is not None
    long_ago = timezone.now() - timedelta(days=2)
    OutboxMessage.objects.update(sent_at=long_ago, available_at=long_ago, attempts=1)

    assert outbox.relay() == 0
    assert outbox.pending_count() == 0
    assert outbox.purge() == 1


@pytest.mark.django_db
def test_the_arguments_are_encrypted_at_rest() -> None:
    from django.db import connection

    outbox.enqueue("core.tasks.send_mail", "t", "s", "body", ["private@client.example"])
    with connection.cursor() as cursor:
        cursor.execute("SELECT payload FROM core_outboxmessage")
        [(stored,)] = cursor.fetchall()

    assert "private@client.example" not in stored


@pytest.mark.django_db
def test_a_last_attempt_still_in_flight_is_not_given_up_nor_retried(settings) -> None:
    """Published for the 50th time and maybe running: no alert, no second copy by
    hand. Given up once its message is taken to be lost (or its run raised)."""
    message = outbox.enqueue("core.tasks.send_mail", "t", "s", "b", ["a@x.example"], countdown=60)
    assert message is not None
    now = timezone.now()
    OutboxMessage.objects.filter(pk=message.pk).update(
        attempts=outbox.MAX_ATTEMPTS, publish_id="current", sent_at=now, available_at=now
    )

    assert not outbox.given_up().exists()
    assert outbox.retry_given_up() == {}
    message.refresh_from_db()
    assert (message.attempts, message.publish_id) == (outbox.MAX_ATTEMPTS, "current")

    # Its run raised meanwhile, after a retry by hand replaced its publish: that run's
    # release changes nothing and gives nothing up.
    later = now + timedelta(seconds=settings.OUTBOX_REDELIVER_AFTER_SECONDS + 1)
    assert outbox.given_up(later).get() == message
    OutboxMessage.objects.filter(pk=message.pk).update(publish_id="by-hand", attempts=1)
    outbox._release(message, ConnectionRefusedError())
    message.refresh_from_db()
    assert (message.publish_id, message.attempts, message.last_error) == ("by-hand", 1, "")
