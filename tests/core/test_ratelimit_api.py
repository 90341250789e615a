"""The API's throttles: per user (session or token), per token, per address for anonymous
callers, and per address for calls answered 401; 429 with ``Retry-After`` and the
documented error body (docs/error-codes.md, ``throttled``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.test import Client

from accounts.models import User
from accounts.tokens import api_token_create
from core.ratelimit import rate_limited
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

HOME = "198.51.100.7"
ELSEWHERE = "203.0.113.50"
BOOKINGS = "/api/v1/bookings/"
EVENT_TYPES = "/api/v1/event-types/"
THROTTLED = re.compile(r"^Request was throttled\. Expected available in (\d+) seconds?\.$")


@pytest.fixture
def limits(settings: Any) -> Iterator[Any]:
    settings.RATE_LIMITS_ENABLED = True
    cache = caches[settings.RATE_LIMIT_CACHE]
    cache.clear()
    yield settings
    cache.clear()


@pytest.fixture
def refusals() -> Iterator[list[str]]:
    seen: list[str] = []

    def receive(sender: Any, limit: str, **kwargs: Any) -> None:
        seen.append(limit)

    rate_limited.connect(receive, dispatch_uid="tests-api-refusals")
    yield seen
    rate_limited.disconnect(dispatch_uid="tests-api-refusals")


def rates(settings: Any, **changed: str) -> None:
    framework = settings.REST_FRAMEWORK
    settings.REST_FRAMEWORK = {
        **framework,
        "DEFAULT_THROTTLE_RATES": {**framework["DEFAULT_THROTTLE_RATES"], **changed},
    }


@pytest.fixture
def client_user(db: None) -> User:
    return User.objects.create_user(email="api@example.org", password=PASSWORD, name="Ana")


def bearer(user: User, name: str = "script") -> Client:
    made = api_token_create(user=user, name=name, scopes=["bookings:read"])
    return Client(REMOTE_ADDR=HOME, HTTP_AUTHORIZATION=f"Bearer {made.secret}")


def assert_throttled(response: Any) -> int:
    """The documented 429: Retry-After in whole seconds, and the error body saying it."""
    assert response.status_code == 429
    retry_after = int(response["Retry-After"])
    assert retry_after >= 1
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "throttled"
    match = THROTTLED.match(body["error"]["message"])
    assert match, body
    assert int(match.group(1)) == retry_after
    return retry_after


def test_the_defaults(settings):
    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] == {
        "user": "120/minute",
        "token": "60/minute",
        "address": "30/minute",
    }


def test_a_signed_in_user_is_throttled_per_user(limits, refusals, client_user):
    rates(limits, user="3/minute")
    client = Client(REMOTE_ADDR=HOME)
    client.force_login(client_user)

    statuses = [client.get(BOOKINGS).status_code for _ in range(3)]
    refused = client.get(BOOKINGS)

    assert statuses == [200] * 3
    assert assert_throttled(refused) <= 120
    assert refusals == ["api.user"]
    # Someone else, from the same address, is not.
    other = User.objects.create_user(email="other@example.org", password=PASSWORD)
    neighbour = Client(REMOTE_ADDR=HOME)
    neighbour.force_login(other)
    assert neighbour.get(BOOKINGS).status_code == 200


def test_each_token_is_throttled_on_its_own(limits, refusals, client_user):
    rates(limits, token="2/minute")
    script = bearer(client_user, "script")
    backup = bearer(client_user, "backup")

    assert [script.get(BOOKINGS).status_code for _ in range(2)] == [200, 200]
    assert_throttled(script.get(BOOKINGS))
    assert refusals == ["api.token"]
    assert backup.get(BOOKINGS).status_code == 200


def test_a_users_tokens_and_session_count_together_per_user(limits, refusals, client_user):
    rates(limits, user="3/minute")
    browser = Client(REMOTE_ADDR=ELSEWHERE)
    browser.force_login(client_user)

    assert bearer(client_user, "one").get(BOOKINGS).status_code == 200
    assert bearer(client_user, "two").get(BOOKINGS).status_code == 200
    assert browser.get(BOOKINGS).status_code == 200
    assert_throttled(bearer(client_user, "three").get(BOOKINGS))
    assert_throttled(browser.get(BOOKINGS))
    assert refusals == ["api.user", "api.user"]


def test_anonymous_callers_are_throttled_per_address(limits, refusals):
    rates(limits, address="3/minute")
    visitor = Client(REMOTE_ADDR=HOME)

    assert [visitor.get(EVENT_TYPES).status_code for _ in range(3)] == [200] * 3
    assert_throttled(visitor.get(EVENT_TYPES))
    assert refusals == ["api.address"]
    assert Client(REMOTE_ADDR=ELSEWHERE).get(EVENT_TYPES).status_code == 200


def test_calls_answered_401_are_counted_per_address_then_refused(limits, refusals, client_user):
    """DRF checks throttles after authentication: without this, guessing tokens or
    calling without any would never meet a limit."""
    rates(limits, address="3/minute")
    guesser = Client(REMOTE_ADDR=HOME, HTTP_AUTHORIZATION="Bearer slp_guess_0000000000")

    statuses = [guesser.get(BOOKINGS).status_code for _ in range(2)]
    statuses.append(Client(REMOTE_ADDR=HOME).get(BOOKINGS).status_code)

    assert statuses == [401] * 3
    assert_throttled(guesser.get(BOOKINGS))
    assert refusals == ["api.unauthenticated"]
    assert Client(REMOTE_ADDR=ELSEWHERE).get(BOOKINGS).status_code == 401


def test_successful_calls_do_not_count_towards_the_401_limit(limits, client_user):
    rates(limits, address="2/minute")
    script = bearer(client_user)

    assert [script.get(BOOKINGS).status_code for _ in range(5)] == [200] * 5


def test_with_the_limits_off_the_api_is_not_throttled(settings, client_user):
    settings.RATE_LIMITS_ENABLED = False
    rates(settings, user="1/minute")
    client = Client(REMOTE_ADDR=HOME)
    client.force_login(client_user)

    assert [client.get(BOOKINGS).status_code for _ in range(3)] == [200] * 3
