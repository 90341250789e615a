"""Parallel requests get no more than sequential ones: at most five wrong passwords are
heard per account on the tokens page and on step-up, however many arrive at once and
through however many stolen sessions; one form id makes one token.

Each request runs in its own thread with its own database connection, on the session
cookie the attacker (or a double-clicking person) holds.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from accounts.models import ApiToken, User
from audit.models import AuditEntry
from tests.conftest import PASSWORD
from tests.support.concurrency import together

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgres,
    pytest.mark.connections,
]

URL = "/accounts/tokens/"
WRONG = "not the password"  # pragma: allowlist secret
FORM_ID = re.compile(r'name="form_id" value="([^"]+)"')


def stolen_session(user: User) -> str:
    """A signed-in session's cookie value, as a thief would copy it."""
    browser = Client()
    browser.force_login(user)
    return browser.cookies[settings.SESSION_COOKIE_NAME].value


def holding(session: str) -> Client:
    browser = Client()
    browser.cookies[settings.SESSION_COOKIE_NAME] = session
    return browser


def token_form(session: str, password: str) -> dict[str, Any]:
    page = holding(session).get(URL).content.decode()
    return {
        "name": "script",
        "scopes": ["bookings:read"],
        "expires_on": (timezone.localdate() + timedelta(days=30)).isoformat(),
        "password": password,
        "form_id": FORM_ID.search(page)[1],
    }


@pytest.fixture
def victim(db: None) -> User:
    return User.objects.create_user(email="victim@example.org", password=PASSWORD, name="Vic")


def heard(action: str) -> int:
    return AuditEntry.objects.filter(action=action).count()


def test_parallel_wrong_passwords_on_the_tokens_page_are_heard_five_times(victim) -> None:
    """Three bursts of 15, each request through its own stolen session (one session's
    copies of one form are already refused by its one-time id, below)."""
    bursts = [[stolen_session(victim) for _ in range(15)] for _ in range(3)]
    answers: list[Any] = []
    for sessions in bursts:
        forms = [token_form(session, WRONG) for session in sessions]
        answers += together(15, lambda i, s=sessions, f=forms: holding(s[i]).post(URL, f[i]))

    assert [a for a in answers if isinstance(a, Exception)] == []
    assert {a.status_code for a in answers} <= {302, 400}
    assert heard("accounts.api_token.password_refused") == 5
    assert heard("accounts.api_token.signed_out") >= 1
    refused = AuditEntry.objects.filter(action="accounts.api_token.password_refused")
    assert sorted(e.data["failures_in_window"] for e in refused) == [1, 2, 3, 4, 5]
    # Four sessions had a wrong password heard and live on, as after four in a row;
    # the next guess from any of them is not heard, and signs it out.
    alive = [s for sessions in bursts for s in sessions if holding(s).get(URL).status_code == 200]
    assert len(alive) == 4
    for session in alive:
        again = holding(session).post(URL, token_form(session, WRONG))
        assert (again.status_code, again["Location"]) == (302, "/accounts/login/")
        assert holding(session).get(URL).status_code == 302
    assert heard("accounts.api_token.password_refused") == 5
    assert not ApiToken.objects.exists()


def test_parallel_copies_of_one_form_with_wrong_passwords_are_heard_at_most_five_times(
    victim,
) -> None:
    session = stolen_session(victim)
    form = token_form(session, WRONG)
    answers = together(15, lambda _i: holding(session).post(URL, form))

    assert [a for a in answers if isinstance(a, Exception)] == []
    assert 1 <= heard("accounts.api_token.password_refused") <= 5


def test_a_burst_of_one_form_with_the_right_password_makes_one_token(victim) -> None:
    session = stolen_session(victim)
    form = token_form(session, PASSWORD)

    answers = together(10, lambda _i: holding(session).post(URL, form))

    assert [a for a in answers if isinstance(a, Exception)] == []
    assert sorted(a.status_code for a in answers) == [200] + [302] * 9
    assert ApiToken.objects.count() == 1
    assert heard("accounts.api_token.password_refused") == 0
    assert holding(session).get(URL).status_code == 200  # nobody was signed out


def test_parallel_wrong_passwords_on_step_up_are_heard_five_times(victim) -> None:
    User.objects.filter(pk=victim.pk).update(is_staff=True)
    sessions = [stolen_session(victim) for _ in range(2)]
    answers: list[Any] = []
    for session in sessions:
        answers += together(
            12,
            lambda _i, s=session: holding(s).post(
                "/accounts/step-up/", {"password": WRONG, "next": "/admin/"}
            ),
        )

    assert [a for a in answers if isinstance(a, Exception)] == []
    assert {a.status_code for a in answers} <= {200, 302}
    assert heard("accounts.step_up.failed") == 5
    for session in sessions:  # both signed out (each had guesses refused unheard)
        assert holding(session).get("/accounts/step-up/").status_code == 302


def test_a_new_sign_in_starts_the_count_afresh(victim) -> None:
    """After the five, the owner signs in again (proving the password): the tokens
    page hears them again, as when the count lived in the session."""
    sessions = [stolen_session(victim) for _ in range(6)]
    forms = [token_form(session, WRONG) for session in sessions]
    together(6, lambda i: holding(sessions[i]).post(URL, forms[i]))
    assert heard("accounts.api_token.password_refused") == 5

    owner = Client()
    assert owner.post("/accounts/login/", {"username": victim.email, "password": PASSWORD})
    owners = owner.cookies[settings.SESSION_COOKIE_NAME].value
    made = holding(owners).post(URL, token_form(owners, PASSWORD))
    assert made.status_code == 200
    assert ApiToken.objects.count() == 1


@pytest.fixture
def counter_unreachable(settings) -> None:
    """The guess counter's cache is a Redis server that is not there."""
    settings.CACHES = {
        **settings.CACHES,
        "unreachable": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        },
    }
    settings.RATE_LIMIT_CACHE = "unreachable"


def test_without_the_counter_no_password_is_checked(victim, counter_unreachable) -> None:
    session = stolen_session(victim)
    answer = holding(session).post(URL, token_form(session, PASSWORD), follow=True)

    assert answer.status_code == 200
    assert "cannot be checked just now" in answer.content.decode()
    assert not ApiToken.objects.exists()
    step_up = holding(session).post(
        "/accounts/step-up/", {"password": WRONG, "next": "/admin/"}, follow=True
    )
    assert "cannot be checked just now" in step_up.content.decode()
    assert heard("accounts.step_up.failed") == 0
    assert holding(session).get(URL).status_code == 200  # still signed in
