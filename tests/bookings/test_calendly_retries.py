"""429 and 5xx are retried with backoff, honouring Retry-After, within a budget."""

import socket

import pytest

from bookings.calendly import RateLimited, Unavailable
from config import outgoing
from sandbox.calendly_sandbox import services
from sandbox.calendly_sandbox.models import Fault

pytestmark = pytest.mark.django_db(transaction=True)


class Clock:
    """The client's injected sleep: records each pause instead of taking it."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def test_a_429_is_retried_after_retry_after_and_then_succeeds(make_client, api_base, event_type):
    services.fault_arm(status=429, count=1, retry_after=1)
    clock = Clock()
    before = outgoing.calls("calendly", "users.me")

    user = make_client(sleep=clock).current_user()

    assert user.slug == "ada"
    assert clock.sleeps == [1.0]
    assert outgoing.calls("calendly", "users.me") - before == 2
    assert Fault.objects.get().remaining == 0


def test_a_persistent_429_is_rate_limited_after_bounded_attempts(make_client, api_base, event_type):
    services.fault_arm(status=429, count=10, retry_after=0)
    clock = Clock()

    with pytest.raises(RateLimited) as caught:
        make_client(max_attempts=3, sleep=clock).current_user()

    assert caught.value.status == 429
    assert caught.value.title == "Too Many Requests"
    assert clock.sleeps == [0.0, 0.0]
    assert Fault.objects.get().remaining == 7  # exactly three requests went out


def test_a_retry_after_beyond_the_wait_budget_is_not_waited_for(make_client, api_base, event_type):
    services.fault_arm(status=429, count=10, retry_after=30)
    clock = Clock()

    with pytest.raises(RateLimited):
        make_client(max_total_wait=5, sleep=clock).current_user()

    assert clock.sleeps == []


def test_a_5xx_is_retried_with_exponential_backoff(make_client, event_type):
    services.fault_arm(status=500, count=2)  # a 500 carries no Retry-After
    clock = Clock()

    user = make_client(sleep=clock).current_user()

    assert user.slug == "ada"
    assert clock.sleeps == [0.5, 1.0]


def test_a_503_retry_after_is_honoured(make_client, event_type):
    services.fault_arm(status=503, count=1, retry_after=1)
    clock = Clock()

    make_client(sleep=clock).current_user()

    assert clock.sleeps == [1.0]


def test_a_persistent_5xx_is_unavailable(make_client, api_base, event_type):
    services.fault_arm(status=500, count=10, retry_after=0)

    with pytest.raises(Unavailable) as caught:
        make_client(max_attempts=2, sleep=Clock()).current_user()

    assert caught.value.status == 500


def test_a_5xx_on_a_create_is_not_repeated(make_client, calendly, event_type):
    me = calendly.current_user()
    services.fault_arm(status=500, count=1, retry_after=0)

    with pytest.raises(Unavailable):
        make_client(sleep=Clock()).create_webhook_subscription(
            "https://slotpay.example/hooks",
            ["invitee.created"],
            organization=me.current_organization,
            scope="organization",
        )


def test_connection_errors_on_reads_are_retried_then_unavailable(
    make_client, settings, transactional_db
):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.CALENDLY_API_BASE = f"http://127.0.0.1:{port}/api"
    clock = Clock()

    with pytest.raises(Unavailable) as caught:
        make_client(max_attempts=3, sleep=clock).current_user()

    assert caught.value.status is None
    assert clock.sleeps == [0.5, 1.0]
