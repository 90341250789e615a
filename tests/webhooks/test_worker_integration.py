"""The pipeline with its real moving parts: gunicorn, a Celery worker, beat, Redis.

The unit tests run tasks eagerly; these start the processes that production runs
(bench/stack.py) against pytest-django's test database and a PRIVATE redis-server on
a free port, so that the worker can be SIGKILLed and Redis stopped without touching
anything shared. The subprocesses run ``bench.settings``, which registers the bench
handler (bench/webhook_handlers.py): each time it applies an event it writes one
``bench.handled`` audit entry in the handler's transaction, so the audit trail tells
how many times each event was applied.

"Exactly once" below means: the row ends ``processed`` with one ``bench.handled``
entry (the handler's effect) and one ``webhooks.event.processed`` entry.

Run with the services: DATABASE_URL=postgres://... REDIS_URL=redis://...
SLOTPAY_REQUIRE_SERVICES=1 pytest tests/webhooks/test_worker_integration.py
"""

from __future__ import annotations

import json
import secrets
import string
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.db import connection

from audit.models import AuditEntry
from audit.services import verify_chain
from bench import stack
from tests.support.activity import idle_in_transaction
from tests.webhooks.conftest import sign, stripe_event
from webhooks.models import WebhookEvent

pytestmark = [
    pytest.mark.connections,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

HANDLED = "bench.handled"  # bench.webhook_handlers.HANDLED_ACTION (not imported: see below)
PROCESSED = "webhooks.event.processed"
# Small on purpose: a dead worker's claim is taken over after 5 s, a row stored while
# Redis was down is re-enqueued after 2 s, and beat sweeps every second.
ENV = {
    "WEBHOOK_PROCESSING_TIMEOUT_SECONDS": 5,
    "WEBHOOK_REQUEUE_AFTER_SECONDS": 2,
    "WEBHOOK_SWEEP_INTERVAL_SECONDS": 1,
    "LOG_LEVEL": "INFO",
}
# An acknowledgement must never wait on the broker.
FAST_ACK_SECONDS = 2.0

Status = WebhookEvent.Status


def _event_id(label: str) -> str:
    # Letters only after the label: the audit trail's card-number masking must not
    # touch the ids these tests count by.
    return f"evt_{label}_" + "".join(secrets.choice(string.ascii_letters) for _ in range(16))


@dataclass
class Pipeline:
    redis: stack.RedisServer
    web: stack.Gunicorn
    worker: stack.CeleryWorker
    beat: stack.CeleryBeat
    session: requests.Session

    def deliver(self, event: dict[str, Any]) -> tuple[requests.Response, float]:
        """POST a signed delivery to gunicorn; returns the response and its duration."""
        body = json.dumps(event)
        url = f"{self.web.url}/webhooks/stripe/{settings.STRIPE_WEBHOOK_PATH_TOKEN}/"
        started = time.monotonic()
        response = self.session.post(
            url,
            data=body.encode(),
            headers={
                "Content-Type": "application/json",
                "Stripe-Signature": sign(settings.STRIPE_WEBHOOK_SECRETS[0], body),
            },
            timeout=30,
            allow_redirects=False,
        )
        return response, time.monotonic() - started

    def logs(self) -> str:
        return "\n".join(
            f"===== {path.name}\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted(self.web.workdir.glob("*.log"))
        )


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    """Redis, gunicorn, a worker (2 processes) and beat, on the test database.

    The suite's own process never imports bench.webhook_handlers: its registry must
    stay empty for the unit tests. The subprocesses share this process's secrets so
    that this process signs what they verify and reads what they encrypt.
    """
    name = connection.settings_dict["NAME"]
    assert name.startswith("test_"), f"refusing to point the services at {name!r}"
    redis = stack.RedisServer(tmp_path)
    env = stack.service_env(
        database_url=stack.database_url(connection.settings_dict),
        redis_url=redis.url(0),
        secrets=stack.Secrets.from_settings(settings),
        **ENV,
    )
    web = stack.Gunicorn(tmp_path, env, workers=1, threads=4)
    worker = stack.CeleryWorker(tmp_path, env, concurrency=2)
    beat = stack.CeleryBeat(tmp_path, env)
    with stack.running(redis, web, worker, beat), requests.Session() as session:
        yield Pipeline(redis, web, worker, beat, session)


def _row(event_id: str) -> WebhookEvent:
    return WebhookEvent.objects.get(provider="stripe", event_id=event_id)


def _counts(action: str, event_ids: list[str]) -> Counter[str]:
    entries = AuditEntry.objects.filter(action=action, data__event_id__in=event_ids)
    return Counter(entries.values_list("data__event_id", flat=True))


def _wait(check: Any, timeout: float, pipeline: Pipeline, what: str) -> None:
    try:
        stack.wait_until(check, timeout=timeout, interval=0.2)
    except TimeoutError:
        pytest.fail(f"{what} within {timeout:.0f} s\n{pipeline.logs()}")


def test_worker_killed_mid_task_applies_the_event_exactly_once(pipeline: Pipeline) -> None:
    event_id = _event_id("kill")
    event = stripe_event(event_id=event_id)
    # The first attempt waits 60 s before writing, as on a slow provider.
    event["data"]["object"]["metadata"] = {"bench_sleep": "60"}

    response, _ = pipeline.deliver(event)
    assert response.status_code == 200
    assert response.json() == {"status": "stored"}

    _wait(
        lambda: _row(event_id).status == Status.PROCESSING,
        20,
        pipeline,
        "the handler did not start",
    )
    time.sleep(1)  # inside the handler's wait
    pipeline.worker.kill()  # the whole worker, main process and pool, with SIGKILL
    assert not pipeline.worker.alive()

    row = _row(event_id)
    assert row.status == Status.PROCESSING
    assert row.attempts == 1
    # The dead attempt died before its effect.
    assert _counts(HANDLED, [event_id]) == Counter()

    # Whether or not Redis redelivers the unacknowledged task, the sweeper re-enqueues
    # the claim once it is older than the processing timeout.
    pipeline.worker.start().wait_ready()
    _wait(
        lambda: _row(event_id).status == Status.PROCESSED,
        40,
        pipeline,
        "the event was not processed after the worker restarted",
    )

    row = _row(event_id)
    assert row.attempts >= 2
    assert _counts(HANDLED, [event_id]) == Counter({event_id: 1})
    assert _counts(PROCESSED, [event_id]) == Counter({event_id: 1})
    attempts = AuditEntry.objects.filter(action=HANDLED, data__event_id=event_id)
    assert list(attempts.values_list("data__attempt", flat=True)) == [row.attempts]
    assert verify_chain().ok


def test_a_slow_provider_holds_no_transaction_and_other_events_flow(pipeline: Pipeline) -> None:
    """One handler waits 10 s on its provider (the bench handler's stand-in for a slow
    Stripe): meanwhile the worker's other process applies the other events, and no
    connection sits idle in a transaction (it waits with none open)."""
    slow_id = _event_id("slow")
    slow = stripe_event(event_id=slow_id)
    slow["data"]["object"]["metadata"] = {"bench_sleep": "10"}
    assert pipeline.deliver(slow)[0].status_code == 200
    _wait(lambda: _row(slow_id).status == Status.PROCESSING, 20, pipeline, "no slow start")

    started = time.monotonic()
    others = [_event_id("other") for _ in range(20)]
    for event_id in others:
        assert pipeline.deliver(stripe_event(event_id=event_id))[0].status_code == 200
    held: list[str] = []
    while time.monotonic() - started < 6:
        held += idle_in_transaction(longer_than=1.0)
        if _counts(HANDLED, others) == Counter(dict.fromkeys(others, 1)):
            break
        time.sleep(0.1)
    flowed = time.monotonic() - started
    assert _counts(HANDLED, others) == Counter(dict.fromkeys(others, 1)), (
        f"the other events did not flow while one handler waited\n{pipeline.logs()}"
    )
    assert _row(slow_id).status == Status.PROCESSING, f"the slow one ended first ({flowed:.1f} s)"
    assert held == []
    _wait(lambda: _row(slow_id).status == Status.PROCESSED, 30, pipeline, "the slow one")
    assert _counts(HANDLED, [slow_id]) == Counter({slow_id: 1})


def test_deliveries_while_redis_is_down_are_acknowledged_and_processed_once(
    pipeline: Pipeline,
) -> None:
    # The path works end to end first (and gunicorn has its connections).
    warm_up = _event_id("warm")
    response, _ = pipeline.deliver(stripe_event(event_id=warm_up))
    assert response.json() == {"status": "stored"}
    _wait(lambda: _row(warm_up).status == Status.PROCESSED, 20, pipeline, "warm-up")

    pipeline.redis.stop()
    event_ids = [_event_id(f"down{number:02d}") for number in range(50)]
    for number, event_id in enumerate(event_ids):
        response, took = pipeline.deliver(stripe_event(event_id=event_id))
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "stored"}
        assert took < FAST_ACK_SECONDS, (
            f"delivery {number} was acknowledged after {took:.1f} s with the broker down: "
            "storing must not wait for Redis"
        )
    rows = WebhookEvent.objects.filter(event_id__in=event_ids)
    assert Counter(rows.values_list("status", flat=True)) == Counter({Status.RECEIVED: 50})

    pipeline.redis.start().wait_ready()  # the same port, empty
    _wait(
        lambda: rows.filter(status=Status.PROCESSED).count() == 50,
        45,
        pipeline,
        "not every event stored while Redis was down was processed",
    )

    everyone_once = Counter(dict.fromkeys(event_ids, 1))
    assert _counts(HANDLED, event_ids) == everyone_once
    assert _counts(PROCESSED, event_ids) == everyone_once
    assert verify_chain().ok
