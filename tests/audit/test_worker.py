"""The periodic chain check runs in a real Celery worker over the Redis broker."""

import threading
import uuid
from collections.abc import Iterator

import pytest
import redis
from celery import Celery, signals
from celery.contrib.testing.worker import start_worker
from celery.result import EagerResult
from django.conf import settings
from kombu import Exchange, Queue

from audit import Category, record
from audit.tasks import verify_chain
from config.celery import app as celery_app


def _forget_connections(app: Celery) -> None:
    # The app caches its broker pool and result backend from the configuration it
    # first saw (memory:// in the test profile); make it read the current one.
    app._pool = None
    app.amqp._producer_pool = None
    app._backend_cache = None
    app._local = threading.local()


def _leave_logging_alone(**kwargs: object) -> None:
    """A setup_logging receiver: its presence stops Celery from reconfiguring logging."""


@pytest.fixture
def redis_app() -> Iterator[Celery]:
    overrides = {
        "broker_url": settings.REDIS_URL,
        "result_backend": settings.REDIS_URL,
        "task_always_eager": False,
    }
    saved = {name: celery_app.conf[name] for name in overrides}
    celery_app.conf.update(overrides)
    _forget_connections(celery_app)
    signals.setup_logging.connect(_leave_logging_alone)
    try:
        yield celery_app
    finally:
        signals.setup_logging.disconnect(_leave_logging_alone)
        celery_app.conf.update(saved)
        _forget_connections(celery_app)


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
# Celery 5.7's Redis result backend still calls redis-py 8's deprecated setex.
@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
def test_verify_chain_runs_in_a_real_worker(redis_app):
    for number in range(3):
        record(
            "payments.payment.paid",
            category=Category.TRANSACTION,
            actor=None,
            data={"number": number},
        )
    # A queue of its own, so that this run consumes no other run's tasks.
    queue = f"audit-test-{uuid.uuid4().hex}"

    try:
        with start_worker(redis_app, pool="solo", perform_ping_check=False, queues=[queue]):
            result = verify_chain.apply_async(queue=queue)
            outcome = result.get(timeout=30)
        stored_in_redis = redis.Redis.from_url(settings.REDIS_URL).exists(
            f"celery-task-meta-{result.id}"
        )
        result.forget()
    finally:
        with redis_app.connection_for_write() as connection:
            # Declared again so that this connection knows the binding it deletes.
            bound = Queue(queue, Exchange(queue), routing_key=queue)(connection.default_channel)
            bound.declare()
            bound.delete()

    assert outcome == {
        "ok": True,
        "entries": 3,
        "reason": "",
        "security_event_counts_purged": 0,
    }
    assert not isinstance(result, EagerResult)
    assert stored_in_redis
