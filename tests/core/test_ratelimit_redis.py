"""In staging and production the limits count in Redis, shared by every web process:
a limit holds across processes and under concurrent requests."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings
from django.core.cache.backends.redis import RedisCache

from core.ratelimit import Counter
from core.rates import parse_rate
from tests.config.conftest import production_values, run_manage

pytestmark = pytest.mark.redis

LIMIT = "tests.redis"
# What production's cache is configured with (config/settings.py, "Rate limits and CORS").
PRODUCTION_CACHE = {"KEY_PREFIX": "slotpay"}

IN_PRODUCTION = """
import json
from django.core.cache import caches
from core.ratelimit import Counter
from core.rates import parse_rate

counter = Counter("tests.redis", "{identity}", parse_rate("5/hour"))
print(json.dumps({{
    "backend": type(caches["default"]).__name__,
    "allowed": [counter.attempt().allowed for _ in range(3)],
}}))
"""


@pytest.fixture
def identity() -> Iterator[str]:
    """An identity of this test alone; its counters are removed afterwards."""
    made = f"address:test-{uuid.uuid4().hex}"
    yield made
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        for key in client.scan_iter(f"*ratelimit:{LIMIT}:*"):
            client.delete(key)
    finally:
        client.close()


def redis_cache() -> RedisCache:
    """A cache of its own, with its own connection pool: another client of Redis."""
    return RedisCache(settings.REDIS_URL, PRODUCTION_CACHE)


def test_production_counts_in_redis_shared_with_other_processes(identity):
    values = production_values() | {"REDIS_URL": settings.REDIS_URL}

    result = run_manage(
        "shell",
        "--no-imports",
        "-c",
        IN_PRODUCTION.format(identity=identity),
        environment="production",
        values=values,
    )

    assert result.returncode == 0, result.stderr
    other_process = json.loads(result.stdout.strip().splitlines()[-1])
    assert other_process == {"backend": "RedisCache", "allowed": [True, True, True]}
    here = Counter(LIMIT, identity, parse_rate("5/hour"), cache=redis_cache())
    assert [here.attempt().allowed for _ in range(3)] == [True, True, False]
    assert here.attempt().retry_after > 0


@pytest.mark.connections
def test_two_clients_hammering_at_once_let_exactly_the_limit_through(identity):
    rate = parse_rate("25/hour")
    clients = [redis_cache(), redis_cache()]
    allowed: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def hammer(cache: RedisCache) -> None:
        counter = Counter(LIMIT, identity, rate, cache=cache)
        start.wait()
        for _ in range(10):
            decision = counter.attempt()
            with lock:
                allowed.append(decision.allowed)

    threads = [threading.Thread(target=hammer, args=(clients[n % 2],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(allowed) == 80
    assert allowed.count(True) == 25
    # Refusals were not counted: the window holds exactly the accepted requests.
    check = Counter(LIMIT, identity, rate, cache=clients[0]).check()
    assert not check.allowed
