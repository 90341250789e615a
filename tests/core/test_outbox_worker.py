"""The outbox with a real Celery worker and a real (private) Redis: a task whose
message Redis lost is sent again and runs once; a task the worker ran is done and
never sent again; a message published twice (its first copy outlasted the window)
runs once; the broker never holds a task's arguments.

Run with the services: DATABASE_URL=postgres://... REDIS_URL=redis://...
SLOTPAY_REQUIRE_SERVICES=1 pytest tests/core/test_outbox_worker.py
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import redis as redis_client
from django.conf import settings
from django.db import connection
from django.utils import timezone

from bench import stack
from config.celery import app as celery_app
from core import outbox
from core.models import OutboxMessage
from tests.conftest import _forget_broker_connections

pytestmark = [
    pytest.mark.connections,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

WINDOW = 2  # OUTBOX_REDELIVER_AFTER_SECONDS, here and in the worker


@dataclass
class Broker:
    redis: stack.RedisServer
    worker: stack.CeleryWorker

    def flush(self) -> None:
        """Redis restarted empty: every queued message is gone."""
        client = redis_client.Redis.from_url(self.redis.url(0))
        try:
            client.flushall()
        finally:
            client.close()

    def printed(self, text: str) -> int:
        """How often the worker's runs printed ``text`` (the console mail backend)."""
        logs = sorted(self.worker.workdir.glob(f"{self.worker.name}-*.log"))
        return sum(path.read_text(errors="replace").count(text) for path in logs)


@pytest.fixture
def broker(tmp_path: Path, settings) -> Iterator[Broker]:
    """A private Redis, this process publishing to it, and a worker (not started)."""
    name = connection.settings_dict["NAME"]
    assert name.startswith("test_"), f"refusing to point the services at {name!r}"
    settings.OUTBOX_REDELIVER_AFTER_SECONDS = WINDOW
    redis = stack.RedisServer(tmp_path)
    env = stack.service_env(
        database_url=stack.database_url(connection.settings_dict),
        redis_url=redis.url(0),
        secrets=stack.Secrets.from_settings(settings),
        OUTBOX_REDELIVER_AFTER_SECONDS=WINDOW,
        EMAIL_URL="consolemail://",
        LOG_LEVEL="INFO",
    )
    worker = stack.CeleryWorker(tmp_path, env, concurrency=1)
    overrides = {"broker_url": redis.url(0), "task_always_eager": False}
    saved = {key: celery_app.conf[key] for key in overrides}
    celery_app.conf.update(overrides)
    _forget_broker_connections()
    try:
        with stack.running(redis):
            yield Broker(redis, worker)
            worker.stop()
    finally:
        celery_app.conf.update(saved)
        _forget_broker_connections()


def _wait_done(pk: int, broker: Broker, timeout: float = 30) -> OutboxMessage:
    try:
        stack.wait_until(
            lambda: OutboxMessage.objects.filter(pk=pk, done_at__isnull=False).exists(),
            timeout=timeout,
            interval=0.2,
        )
    except TimeoutError:
        pytest.fail(f"the task never ran\n{broker.worker.log()[-3000:]}")
    return OutboxMessage.objects.get(pk=pk)


def test_a_task_lost_with_redis_is_sent_again_and_runs_once(broker: Broker) -> None:
    message = outbox.enqueue(
        "core.tasks.send_mail", "t", "Outbox check one", "Hello", ["c@client.example"]
    )
    assert message is not None
    message.refresh_from_db()
    assert message.sent_at is not None  # published: the message waits in Redis
    broker.flush()
    broker.worker.start().wait_ready()

    time.sleep(1)  # the worker has nothing to run
    message.refresh_from_db()
    assert message.done_at is None
    assert broker.printed("Subject: Outbox check one") == 0
    sent = OutboxMessage.objects.filter(pk=message.pk)
    sent.update(sent_at=timezone.now() - timedelta(seconds=WINDOW - 1))
    assert outbox.relay() == 0  # within the window: it may still be in a queue

    sent.update(sent_at=timezone.now() - timedelta(seconds=WINDOW + 1))
    assert outbox.relay() == 1
    message = _wait_done(message.pk, broker)
    assert message.attempts == 2
    assert broker.printed("Subject: Outbox check one") == 1

    # Done: later passes leave it.
    OutboxMessage.objects.filter(pk=message.pk).update(
        sent_at=timezone.now() - timedelta(seconds=WINDOW * 10)
    )
    assert outbox.relay() == 0


def test_a_task_the_worker_ran_is_done_and_not_sent_again(broker: Broker) -> None:
    broker.worker.start().wait_ready()
    message = outbox.enqueue(
        "core.tasks.send_mail", "t", "Outbox check two", "Hello", ["c@client.example"]
    )
    assert message is not None
    message = _wait_done(message.pk, broker)

    time.sleep(WINDOW + 0.5)
    assert outbox.relay() == 0
    assert message.attempts == 1
    assert broker.printed("Subject: Outbox check two") == 1
    assert settings.OUTBOX_REDELIVER_AFTER_SECONDS == WINDOW
    # The worker logs through Django's LOGGING (its filters mask personal data), not
    # through handlers of Celery's own: every line in our format, none in Celery's.
    log = broker.worker.log()
    assert " INFO celery.apps.worker [-] " in log
    assert "INFO/MainProcess]" not in log


def test_a_message_published_again_while_the_first_waits_runs_once(broker: Broker) -> None:
    """The workers were down for longer than the window: the relay published the row
    again, and both copies wait in Redis. The earlier one finds its publish replaced."""
    message = outbox.enqueue(
        "core.tasks.send_mail", "t", "Outbox check three", "Hello", ["c@client.example"]
    )
    assert message is not None
    OutboxMessage.objects.filter(pk=message.pk).update(
        sent_at=timezone.now() - timedelta(seconds=WINDOW + 1)
    )
    assert outbox.relay() == 1
    client = redis_client.Redis.from_url(broker.redis.url(0))
    try:
        assert client.llen(settings.CELERY_TASK_DEFAULT_QUEUE) == 2
    finally:
        client.close()

    broker.worker.start().wait_ready()
    message = _wait_done(message.pk, broker)
    time.sleep(1)  # the other copy's turn
    assert message.attempts == 2
    assert broker.printed("Subject: Outbox check three") == 1
    assert "outbox.stale_copy" in broker.worker.log()


def test_the_broker_never_holds_the_tasks_arguments(broker: Broker) -> None:
    outbox.enqueue(
        "core.tasks.send_mail", "t", "Private subject", "Private body", ["private@client.example"]
    )
    client = redis_client.Redis.from_url(broker.redis.url(0))
    try:
        queued = client.lrange(settings.CELERY_TASK_DEFAULT_QUEUE, 0, -1)
    finally:
        client.close()

    assert len(queued) == 1
    for secret in (b"private@client.example", b"Private subject", b"Private body"):
        assert secret not in queued[0]
