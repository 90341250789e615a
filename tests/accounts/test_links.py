"""One-time links: once, for one purpose, until they expire; only a digest is stored."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from accounts import links
from accounts.models import OneTimeLink

HOUR = timedelta(hours=1)


@pytest.mark.django_db
def test_a_link_works_once_for_its_purpose_only(owner):
    secret = links.issue(links.Purpose.VERIFY_EMAIL, user=owner, max_age=HOUR)
    assert not OneTimeLink.objects.filter(digest=secret).exists()  # the secret is not stored
    assert links.spend(secret, links.Purpose.RESET_PASSWORD) is None
    spent = links.spend(secret, links.Purpose.VERIFY_EMAIL)
    assert spent is not None
    assert spent.user == owner
    assert spent.used_at is not None
    assert links.spend(secret, links.Purpose.VERIFY_EMAIL) is None


@pytest.mark.django_db
def test_a_link_expires(owner):
    secret = links.issue(links.Purpose.RESET_PASSWORD, user=owner, max_age=HOUR)
    with time_machine.travel(timezone.now() + HOUR + timedelta(seconds=1)):
        assert links.peek(secret, links.Purpose.RESET_PASSWORD) is None
        assert links.spend(secret, links.Purpose.RESET_PASSWORD) is None


@pytest.mark.django_db
def test_a_newer_link_replaces_the_older_one(owner):
    first = links.issue(links.Purpose.RESET_PASSWORD, user=owner, max_age=HOUR)
    second = links.issue(links.Purpose.RESET_PASSWORD, user=owner, max_age=HOUR)
    assert links.spend(first, links.Purpose.RESET_PASSWORD) is None
    assert links.spend(second, links.Purpose.RESET_PASSWORD) is not None


@pytest.mark.django_db
@pytest.mark.parametrize(
    "secret", ["", None, 7, "x" * 65, "é" * 10, "a\x00b", "../../etc", {"a": 1}, "ab cd"]
)
def test_malformed_secrets_are_no_link(owner, secret):
    links.issue(links.Purpose.VERIFY_EMAIL, user=owner, max_age=HOUR)
    assert links.spend(secret, links.Purpose.VERIFY_EMAIL) is None


@pytest.mark.connections
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_clicks_at_once_spend_a_link_once(owner):
    secret = links.issue(links.Purpose.RECOVER_SESSION, user=owner, max_age=HOUR)
    barrier = threading.Barrier(6)
    won: list[bool] = []

    def click() -> None:
        barrier.wait()
        try:
            won.append(links.spend(secret, links.Purpose.RECOVER_SESSION) is not None)
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(won) == [False] * 5 + [True]
