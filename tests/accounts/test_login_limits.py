"""Sign-in lockouts per (account, address) pair, per address and per account.

A pair alone let one address try 40 usernames, and one account be tried from 40
addresses, without a lockout. Both sign-in pages go through the same limits, and a
correct password is refused while a limit holds.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client

from tests.conftest import PASSWORD

PAGES = ["/accounts/login/", "/admin/login/"]
OFFICE = "203.0.113.7"


@pytest.fixture(params=PAGES)
def page(request: pytest.FixtureRequest) -> str:
    return request.param


def _sign_in(client: Client, page: str, email: str, password: str, address: str):
    return client.post(page, {"username": email, "password": password}, REMOTE_ADDR=address)


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_the_defaults(db):
    assert (
        settings.AXES_FAILURE_LIMIT,
        settings.AXES_ADDRESS_FAILURE_LIMIT,
        settings.AXES_ACCOUNT_FAILURE_LIMIT,
    ) == (5, 20, 10)


def test_one_address_trying_many_accounts_is_locked_out(client, clerk, page):
    limit = settings.AXES_ADDRESS_FAILURE_LIMIT

    statuses = [
        _sign_in(client, page, f"guess{n}@example.net", "wrong", OFFICE).status_code
        for n in range(40)
    ]

    assert statuses == [200] * (limit - 1) + [429] * (40 - limit + 1)
    # Every account from that address, the right password included, until it cools off.
    locked = _sign_in(client, page, "clerk@example.com", PASSWORD, OFFICE)
    assert locked.status_code == 429
    # Our page says how long to wait, and not that an account is locked (it is the
    # address): axes' bare "Account locked" text was wrong here.
    assert "paused for 15 minutes" in locked.content.decode()
    assert locked["Retry-After"] == "900"
    assert "Account locked" not in locked.content.decode()
    assert not _signed_in(client)
    # Another address is not affected.
    assert _sign_in(client, page, "clerk@example.com", PASSWORD, "192.0.2.1").status_code == 302
    assert _signed_in(client)


def test_one_account_tried_from_many_addresses_is_locked_out(client, clerk, page):
    limit = settings.AXES_ACCOUNT_FAILURE_LIMIT

    statuses = [
        _sign_in(client, page, "clerk@example.com", "wrong", f"198.51.100.{n}").status_code
        for n in range(40)
    ]

    assert statuses == [200] * (limit - 1) + [429] * (40 - limit + 1)
    # The right password from yet another address is refused too.
    assert _sign_in(client, page, "clerk@example.com", PASSWORD, "192.0.2.1").status_code == 429
    assert not _signed_in(client)
    # Other accounts are not affected.
    assert _sign_in(client, page, "other@example.net", "wrong", "192.0.2.1").status_code == 200


def test_one_account_from_one_address_is_locked_out_first(client, clerk, page):
    limit = settings.AXES_FAILURE_LIMIT

    statuses = [
        _sign_in(client, page, "clerk@example.com", "wrong", OFFICE).status_code
        for _ in range(limit)
    ]

    assert statuses == [200] * (limit - 1) + [429]
    assert _sign_in(client, page, "clerk@example.com", PASSWORD, OFFICE).status_code == 429
    assert not _signed_in(client)


def test_signing_in_to_ones_own_account_does_not_reset_the_address(client, clerk, stranger):
    """A success clears its own pair only: anyone with an account could otherwise reset
    their address's count by signing in to it between guesses."""
    page = "/accounts/login/"
    limit = settings.AXES_ADDRESS_FAILURE_LIMIT
    for n in range(limit - 1):
        _sign_in(client, page, f"guess{n}@example.net", "wrong", OFFICE)

    assert _sign_in(Client(), page, "stranger@example.net", PASSWORD, OFFICE).status_code == 302

    assert _sign_in(client, page, "guess-last@example.net", "wrong", OFFICE).status_code == 429


def test_a_success_clears_its_own_pair(client, clerk):
    page = "/accounts/login/"
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _sign_in(client, page, "clerk@example.com", "wrong", OFFICE)

    assert _sign_in(client, page, "clerk@example.com", PASSWORD, OFFICE).status_code == 302
    client.post("/accounts/logout/")

    # A fresh allowance for the pair: one typo is not a lockout.
    assert _sign_in(client, page, "clerk@example.com", "wrong", OFFICE).status_code == 200
    assert _sign_in(client, page, "clerk@example.com", PASSWORD, OFFICE).status_code == 302


def test_a_failed_sign_in_stores_no_calendly_details_from_next(client, db):
    """Calendly's redirect reaches the sign-in page through ``?next=`` when the client
    was signed out; axes stores the page's query with each failure."""
    scheduled = "/bookings/scheduled/?" + urlencode(
        {"invitee_full_name": "Clara Client", "invitee_email": "clara@client.example"}
    )

    client.post(
        "/accounts/login/?" + urlencode({"next": scheduled}),
        {"username": "clara@client.example", "password": "wrong"},  # pragma: allowlist secret
    )

    stored = AccessAttempt.objects.get()
    assert "next=" in stored.get_data
    assert "clara" not in (stored.get_data + stored.post_data).lower()
