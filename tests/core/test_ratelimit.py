"""The sliding-window counter behind every limit (core.ratelimit.Counter), and rates."""

from __future__ import annotations

import re

import pytest
from django.core.cache.backends.locmem import LocMemCache

from core.ratelimit import Counter, wait_in_words
from core.rates import Rate, parse_rate
from tests.config.conftest import run_manage

# A moment at the very start of a window of any length used here.
T0 = 1_800_000_000 - 1_800_000_000 % 3600


@pytest.fixture
def cache() -> LocMemCache:
    made = LocMemCache("tests-ratelimit", {})
    made.clear()
    return made


def _counter(cache: LocMemCache, rate: str = "3/minute", identity: str = "address:192.0.2.1"):
    return Counter("tests.limit", identity, parse_rate(rate), cache=cache)


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("10/minute", Rate(10, 60)),
        ("10/min", Rate(10, 60)),
        ("5/hour", Rate(5, 3600)),
        ("5 / h", Rate(5, 3600)),
        ("100/day", Rate(100, 86400)),
        ("3/15min", Rate(3, 900)),
        ("2/s", Rate(2, 1)),
        (" 20/HOUR ", Rate(20, 3600)),
    ],
)
def test_rates_are_read_in_drfs_form_with_an_optional_multiple(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize(
    "text", ["", "10", "ten/minute", "10/fortnight", "0/minute", "10/0min", "-1/hour", "10/m\x00"]
)
def test_a_malformed_rate_is_refused_saying_what_is_accepted(text):
    with pytest.raises(ValueError, match=r"minute|at least 1"):
        parse_rate(text)


def test_the_limit_lets_its_count_through_then_refuses(cache):
    counter = _counter(cache)

    decisions = [counter.attempt(now=T0 + n) for n in range(5)]

    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    # The three fall out of the sliding window after 60 s plus a third of the next
    # window (3 x (1 - 20/60) + 1 = 3), counted from the refused request.
    assert decisions[3].retry_after == 60 + 20 - 3
    assert decisions[4].retry_after == 60 + 20 - 4


def test_waiting_as_told_lets_the_next_request_in_and_refusals_are_not_counted(cache):
    counter = _counter(cache)
    for n in range(3):
        assert counter.attempt(now=T0 + n).allowed
    refused = counter.attempt(now=T0 + 10)
    for n in range(50):  # hammering while refused changes nothing
        assert not counter.attempt(now=T0 + 11 + n / 10).allowed

    then = T0 + 10 + refused.retry_after
    assert not counter.attempt(now=then - 2).allowed
    assert counter.attempt(now=then).allowed


def test_a_burst_across_a_window_boundary_is_still_limited(cache):
    """A fixed window would let 3 in at 0:59 and 3 more at 1:00."""
    counter = _counter(cache)
    assert all(counter.attempt(now=T0 + 59).allowed for _ in range(3))

    assert not counter.attempt(now=T0 + 60).allowed
    assert not counter.attempt(now=T0 + 60 + 15).allowed


def test_the_previous_window_weighs_less_as_it_slides_away(cache):
    counter = _counter(cache, "4/minute")
    assert all(counter.attempt(now=T0 + 30).allowed for _ in range(4))

    # At 1:30 the previous window still overlaps by half: 4 x 0.5 = 2, so 2 more fit.
    assert [counter.attempt(now=T0 + 90).allowed for _ in range(3)] == [True, True, False]
    # At 1:45, 4 x 0.25 + 2 = 3: one more.
    assert [counter.attempt(now=T0 + 105).allowed for _ in range(2)] == [True, False]


def test_each_identity_and_each_limit_counts_alone(cache):
    first = _counter(cache, identity="address:192.0.2.1")
    assert all(first.attempt(now=T0).allowed for _ in range(3))
    assert not first.attempt(now=T0).allowed

    assert _counter(cache, identity="address:192.0.2.2").attempt(now=T0).allowed
    other_limit = Counter("tests.other", "address:192.0.2.1", parse_rate("3/minute"), cache=cache)
    assert other_limit.attempt(now=T0).allowed


def test_check_counts_nothing_and_count_counts_regardless(cache):
    counter = _counter(cache)
    for _ in range(5):
        assert counter.check(now=T0).allowed
    for _ in range(5):
        counter.count(now=T0)

    decision = counter.check(now=T0)
    assert not decision.allowed
    assert decision.retry_after > 60


def test_undo_takes_back_the_request_it_counted(cache):
    counter = _counter(cache)
    for _ in range(3):
        held = _counter(cache)
        assert held.attempt(now=T0).allowed
    held.undo()
    held.undo()  # only once

    assert counter.attempt(now=T0).allowed
    assert not counter.attempt(now=T0).allowed


def test_the_cache_key_names_the_limit_but_not_the_identity(cache):
    counter = Counter("sign_in.email", "email:" + "ab" * 32, parse_rate("3/minute"), cache=cache)
    counter.attempt(now=T0)

    [key] = list(cache._cache)
    _, _, prefix, limit, digest, seconds, _window = key.split(":")
    assert (prefix, limit, seconds) == ("ratelimit", "sign_in.email", "60")
    assert re.fullmatch(r"[0-9a-f]{32}", digest)
    assert "ab" * 32 not in key


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (1, "1 second"),
        (59, "59 seconds"),
        (60, "1 minute"),
        (61, "2 minutes"),
        (3540, "59 minutes"),
        (3600, "1 hour"),
        (3660, "1 hour 1 minute"),
        (7320, "2 hours 2 minutes"),
    ],
)
def test_the_wait_is_said_in_words_rounded_up(seconds, words):
    assert wait_in_words(seconds) == words


def test_rates_come_from_the_environment_and_a_malformed_one_stops_start_up_naming_it():
    shown = run_manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings; "
        "print(settings.RATE_LIMITS['sign_in.address']['rate'], "
        "settings.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']['token'])",
        environment="test",
        values={"RATE_LIMIT_SIGN_IN_PER_ADDRESS": "50/hour", "RATE_LIMIT_API_PER_TOKEN": "7/s"},
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == ["50/hour", "7/s"]

    refused = run_manage(
        "check", environment="test", values={"RATE_LIMIT_SIGN_IN_PER_ADDRESS": "lots"}
    )
    assert refused.returncode != 0
    assert "ConfigurationError: RATE_LIMIT_SIGN_IN_PER_ADDRESS: 'lots' is not a rate" in (
        refused.stderr
    )
