"""The pages' limits (RATE_LIMITS, core.ratelimit.RateLimitMiddleware): every row answers
429 with ``Retry-After`` and our page, counted per the identity it names."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import time_machine
from django.core.cache import caches
from django.test import Client
from django.utils import timezone

from accounts.models import Builder, User
from accounts.sessions import seal
from audit.models import AuditEntry
from bookings.models import EventType, PolicyConsent
from core.ratelimit import rate_limited, wait_in_words
from tests.bookings.factories import make_event_type
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

HOME = "198.51.100.7"
ELSEWHERE = "203.0.113.50"
WRONG = "not the password"  # pragma: allowlist secret


@pytest.fixture
def limits(settings: Any) -> Iterator[Any]:
    """The limits on (the test profile has them off), from an empty cache."""
    settings.RATE_LIMITS_ENABLED = True
    cache = caches[settings.RATE_LIMIT_CACHE]
    cache.clear()
    yield settings
    cache.clear()


@pytest.fixture
def refusals() -> Iterator[list[dict[str, Any]]]:
    """What rate_limited was sent with, in order."""
    seen: list[dict[str, Any]] = []

    def receive(sender: Any, **kwargs: Any) -> None:
        seen.append(kwargs)

    rate_limited.connect(receive, dispatch_uid="tests-refusals")
    yield seen
    rate_limited.disconnect(dispatch_uid="tests-refusals")


def tighten(settings: Any, name: str, rate: str = "3/minute") -> None:
    row = settings.RATE_LIMITS[name]
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, name: {**row, "rate": rate}}


@pytest.fixture
def member(db: None) -> User:
    """A signed-up client whose email is verified: may book."""
    return User.objects.create_user(
        email="member@example.org",
        password=PASSWORD,
        name="Mia Member",
        email_verified_at=timezone.now(),
    )


def signed_in(user: User, address: str = HOME) -> Client:
    client = Client(REMOTE_ADDR=address)
    client.force_login(user)
    return client


def ended_session_of(user: User, address: str) -> Client:
    """A browser whose session ended (idle) while ``user`` was signed in."""
    client = Client(REMOTE_ADDR=address)
    session = client.session
    session["session_ended"] = {"user": user.pk, "reason": "idle", "path": seal("/bookings/")}
    session.save()
    return client


@dataclass(frozen=True)
class World:
    member: User
    event_type: EventType


@pytest.fixture
def world(member: User) -> World:
    builder = Builder.objects.create(name="Limits Studio", slug="limits-studio")
    return World(member=member, event_type=make_event_type(builder))


def _book(n: int, world: World) -> Any:
    event_type = world.event_type
    return signed_in(world.member).post(
        f"/sessions/{event_type.pk}/",
        {"consent": "yes", "policy_version": str(event_type.refund_policy_version)},
    )


# How to send the n-th request that one row of RATE_LIMITS counts, always with the same
# identity for that row and, where the page has several limits, a different one for the
# others: the row under test is the one that refuses.
RECIPES: dict[str, Callable[[int, World], Any]] = {
    "sign_in.address": lambda n, world: Client(REMOTE_ADDR=HOME).post(
        "/accounts/login/", {"username": f"guess{n}@example.net", "password": WRONG}
    ),
    "sign_in.email": lambda n, world: Client(REMOTE_ADDR=HOME).post(
        "/accounts/login/",
        {"username": ["Member@Example.org ", "member@example.org"][n % 2], "password": WRONG},
    ),
    "sign_up.address": lambda n, world: Client(REMOTE_ADDR=HOME).post(
        "/accounts/signup/", {"email": f"new{n}@example.net", "name": "New", "password1": "x"}
    ),
    "password_reset.address": lambda n, world: Client(REMOTE_ADDR=HOME).post(
        "/accounts/password/reset/", {"email": f"someone{n}@example.net"}
    ),
    # The same address however it is typed.
    "password_reset.email": lambda n, world: Client(REMOTE_ADDR=HOME).post(
        "/accounts/password/reset/", {"email": ["member@example.org", " MEMBER@example.ORG"][n % 2]}
    ),
    "verify_resend.user": lambda n, world: signed_in(world.member, f"192.0.2.{n + 1}").post(
        "/accounts/verify/resend/"
    ),
    "password_check.user": lambda n, world: signed_in(world.member, f"192.0.2.{n + 1}").post(
        ["/accounts/profile/", "/accounts/password/"][n % 2],
        {"current_password": WRONG, "old_password": WRONG, "name": "Mia Member"},
    ),
    "invite.user": lambda n, world: signed_in(world.member, f"192.0.2.{n + 1}").post(
        f"/accounts/builders/{world.event_type.builder.slug}/invite/",
        {"email": f"invitee{n}@example.net", "role": "member"},
    ),
    "recover.address": lambda n, world: Client(REMOTE_ADDR=HOME).post("/accounts/session/recover/"),
    "recover.account": lambda n, world: ended_session_of(world.member, f"192.0.2.{n + 1}").post(
        "/accounts/session/recover/"
    ),
    "booking.user": _book,
    # One counter for the three pages that call a provider.
    "checkout.user": lambda n, world: signed_in(world.member, f"192.0.2.{n + 1}").post(
        [
            "/bookings/scheduled/",
            f"/bookings/{uuid.uuid4()}/pay/",
            f"/bookings/{uuid.uuid4()}/paid/",
        ][n % 3]
    ),
}


def test_every_limit_has_a_recipe_here(settings):
    assert set(RECIPES) == set(settings.RATE_LIMITS)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_each_limit_answers_429_with_retry_after_and_our_page(limits, refusals, world, name):
    tighten(limits, name)

    answers = [RECIPES[name](n, world) for n in range(4)]

    assert [a.status_code == 429 for a in answers] == [False, False, False, True]
    refused = answers[-1]
    retry_after = int(refused["Retry-After"])
    assert 1 <= retry_after <= 120
    page = refused.content.decode()
    assert "Too many requests" in page
    assert f"Please wait {wait_in_words(retry_after)}, then try again." in page
    assert "member@example.org" not in page.lower()
    assert refused["X-Request-ID"] in page
    assert "no-store" in refused["Cache-Control"]
    assert [r["limit"] for r in refusals] == [name]
    assert refusals[0]["retry_after"] == retry_after


def test_both_sign_in_pages_share_the_address_limit(limits, refusals):
    tighten(limits, "sign_in.address")
    site = Client(REMOTE_ADDR=HOME)
    for n in range(2):
        site.post("/accounts/login/", {"username": f"a{n}@example.net", "password": WRONG})

    admin = Client(REMOTE_ADDR=HOME)
    assert (
        admin.post("/admin/login/", {"username": "b@example.net", "password": WRONG}).status_code
        == 200
    )
    assert (
        admin.post("/admin/login/", {"username": "c@example.net", "password": WRONG}).status_code
        == 429
    )


def test_a_refused_sign_in_does_not_sign_in_even_with_the_right_password(limits, member):
    tighten(limits, "sign_in.email", "1/hour")
    Client(REMOTE_ADDR=HOME).post(
        "/accounts/login/", {"username": "member@example.org", "password": WRONG}
    )

    client = Client(REMOTE_ADDR=HOME)
    answer = client.post(
        "/accounts/login/", {"username": "member@example.org", "password": PASSWORD}
    )

    assert answer.status_code == 429
    assert "_auth_user_id" not in client.session


def test_another_address_and_another_email_are_counted_apart(limits):
    tighten(limits, "sign_in.address")
    tighten(limits, "sign_in.email")

    def sign_in(email: str, address: str) -> int:
        return (
            Client(REMOTE_ADDR=address)
            .post("/accounts/login/", {"username": email, "password": WRONG})
            .status_code
        )

    assert [sign_in("one@example.net", HOME) for _ in range(3)] == [200] * 3
    assert sign_in("one@example.net", HOME) == 429
    assert sign_in("two@example.net", HOME) == 429  # the address is spent
    assert sign_in("two@example.net", ELSEWHERE) == 200
    assert sign_in("one@example.net", ELSEWHERE) == 200  # another address's count


def test_nobody_can_spend_another_persons_email_limits(limits, member):
    """Guesses at someone's email from many addresses, and resets asked for it, never
    refuse that person's own sign-in or reset from their address."""
    tighten(limits, "sign_in.email", "2/hour")
    tighten(limits, "password_reset.email", "2/hour")
    for n in range(6):
        attacker = Client(REMOTE_ADDR=f"192.0.2.{n + 1}")
        attacker.post("/accounts/login/", {"username": "member@example.org", "password": WRONG})
        attacker.post("/accounts/password/reset/", {"email": "member@example.org"})

    owner = Client(REMOTE_ADDR=HOME)
    reset = owner.post("/accounts/password/reset/", {"email": "member@example.org"})
    signed = owner.post(
        "/accounts/login/", {"username": "member@example.org", "password": PASSWORD}
    )

    assert reset.status_code != 429
    assert (signed.status_code, owner.session["_auth_user_id"]) == (302, str(member.pk))


def test_ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4(limits):
    tighten(limits, "password_reset.address")

    def reset(address: str) -> int:
        return (
            Client(REMOTE_ADDR=address)
            .post("/accounts/password/reset/", {"email": f"{uuid.uuid4().hex}@example.net"})
            .status_code
        )

    statuses = [reset(f"2001:db8:1:2::{n:x}") for n in range(1, 4)]
    assert 429 not in statuses
    assert reset("2001:db8:1:2:ffff::1") == 429  # the same /64
    assert reset("2001:db8:1:3::1") != 429  # the next /64

    assert [reset("192.0.2.77") != 429 for _ in range(3)] == [True] * 3
    assert reset("::ffff:192.0.2.77") == 429


def test_behind_trusted_proxies_each_client_address_counts(limits):
    limits.TRUSTED_PROXY_COUNT = 1
    tighten(limits, "password_reset.address")

    def reset(forwarded_for: str) -> int:
        client = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded_for)
        return client.post(
            "/accounts/password/reset/", {"email": f"{uuid.uuid4().hex}@example.net"}
        ).status_code

    assert [reset("203.0.113.1") != 429 for _ in range(3)] == [True] * 3
    assert reset("203.0.113.1") == 429
    # Spoofed entries to the left of what our proxy appended change nothing.
    assert reset("198.51.100.1, 203.0.113.1") == 429
    assert reset("203.0.113.2") != 429


def test_after_waiting_retry_after_the_page_answers_again(limits):
    tighten(limits, "recover.address", "2/hour")
    with time_machine.travel("2026-11-30 10:00:00+00:00", tick=False) as traveller:
        client = Client(REMOTE_ADDR=HOME)
        for _ in range(2):
            assert client.post("/accounts/session/recover/").status_code == 303
        refused = client.post("/accounts/session/recover/")
        assert refused.status_code == 429
        retry_after = int(refused["Retry-After"])
        for _ in range(20):  # refused requests are not counted
            assert client.post("/accounts/session/recover/").status_code == 429

        traveller.shift(retry_after - 5)
        assert client.post("/accounts/session/recover/").status_code == 429
        traveller.shift(5)
        assert client.post("/accounts/session/recover/").status_code == 303


def test_a_refused_booking_records_no_consent(limits, world):
    member, event_type = world.member, world.event_type
    tighten(limits, "booking.user", "2/hour")
    client = signed_in(member)
    data = {"consent": "yes", "policy_version": str(event_type.refund_policy_version)}

    answers = [client.post(f"/sessions/{event_type.pk}/", data) for _ in range(3)]

    assert [a.status_code for a in answers] == [302, 302, 429]
    assert PolicyConsent.objects.filter(user=member).count() == 2
    # Another client still books.
    other = User.objects.create_user(
        email="other@example.org", password=PASSWORD, email_verified_at=timezone.now()
    )
    assert signed_in(other).post(f"/sessions/{event_type.pk}/", data).status_code == 302


def test_reading_a_page_is_not_limited(limits, member):
    tighten(limits, "sign_in.address", "1/hour")
    client = Client(REMOTE_ADDR=HOME)

    assert [client.get("/accounts/login/").status_code for _ in range(5)] == [200] * 5


def test_a_limit_naming_no_view_yet_is_harmless(limits):
    limits.RATE_LIMITS = {
        **limits.RATE_LIMITS,
        "future.address": {"views": ["accounts:not_built_yet"], "key": "address", "rate": "1/hour"},
    }

    client = Client(REMOTE_ADDR=HOME)
    assert [client.post("/accounts/login/", {}).status_code for _ in range(3)] == [200] * 3


def test_with_the_limits_off_nothing_is_counted(settings):
    settings.RATE_LIMITS_ENABLED = False
    tighten(settings, "sign_in.address", "1/hour")
    caches[settings.RATE_LIMIT_CACHE].clear()
    client = Client(REMOTE_ADDR=HOME)

    assert [client.post("/accounts/login/", {}).status_code for _ in range(3)] == [200] * 3
    assert not caches[settings.RATE_LIMIT_CACHE]._cache


def test_with_the_cache_unreachable_pages_answer_and_the_log_says_why(limits, caplog):
    limits.CACHES = {
        **limits.CACHES,
        "unreachable": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        },
    }
    limits.RATE_LIMIT_CACHE = "unreachable"
    tighten(limits, "sign_in.address", "1/hour")
    client = Client(REMOTE_ADDR=HOME)

    with caplog.at_level(logging.WARNING, logger="core.ratelimit"):
        statuses = [client.post("/accounts/login/", {}).status_code for _ in range(3)]

    assert statuses == [200] * 3
    assert "ratelimit.cache-unavailable" in caplog.messages


def test_a_refusal_is_a_security_audit_entry_without_personal_data(limits, member):
    tighten(limits, "sign_in.email", "1/hour")
    for _ in range(2):
        Client(REMOTE_ADDR=ELSEWHERE).post(
            "/accounts/login/", {"username": "member@example.org", "password": WRONG}
        )

    entry = AuditEntry.objects.get(action="core.request.throttled")
    assert entry.category == "security"
    assert entry.data["limit"] == "sign_in.email"
    assert entry.data["retry_after"] > 0
    assert "member@example.org" not in str(entry.data).lower()
    assert ELSEWHERE not in str(entry.data)
