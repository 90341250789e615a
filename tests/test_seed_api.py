"""The API case the project's seed names, under its name, end to end.

A client and a builder with a paid booking (our pages and both providers' sandboxes over
real HTTP, tests/bookings/world.py), and tokens made the way their owners make them, on
the account's tokens page. The behaviours are tested in detail in
tests/accounts/test_tokens*.py and tests/bookings/test_api_tokens.py; this says in one
place that they hold.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from accounts.models import ApiToken, User
from audit.models import AuditEntry
from bookings.models import Booking
from tests.bookings.world import PRICE, World, world
from tests.conftest import PASSWORD

__all__ = ["world"]

pytestmark = pytest.mark.django_db(transaction=True)

CARD = "4242 4242 4242 4242"
CHALLENGE = 'Bearer realm="Slotpay API"'


def make_token(world: World, user: User, scopes: list[str], days: int = 90) -> str:
    """On the tokens page, as its owner does: password again, the token shown once."""
    browser = world.browser(user)
    page = browser.get("/accounts/tokens/").content.decode()
    form_id = re.search(r'name="form_id" value="([^"]+)"', page)[1]
    made = browser.post(
        "/accounts/tokens/",
        {
            "name": f"{user.email} script",
            "scopes": scopes,
            "expires_on": (timezone.localdate() + timedelta(days=days)).isoformat(),
            "password": PASSWORD,
            "form_id": form_id,
        },
    )
    assert made.status_code == 200, made.content[:500]
    return re.search(r"<code>(slp_[0-9A-Za-z_]+)</code>", made.content.decode())[1]


def caller(secret: str | None = None) -> Client:
    """A program calling the API: no cookies, CSRF checked as a browser's would be."""
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return Client(headers=headers, enforce_csrf_checks=True)


def test_unauthorized_access_prevention(world: World) -> None:
    """Without credentials every bookings call is a 401 with a Bearer challenge; a token
    reaches only its owner's bookings and only what its scopes allow; an expired or a
    revoked token is refused; a token that may cancel does, without a CSRF token. Every
    refusal leaves the booking as it was."""
    slot = world.book()
    assert world.pay(slot, CARD).status_code == 303
    world.deliver()
    world.retry_waiting()
    booking = slot.booking
    assert booking.status == Booking.Status.CONFIRMED
    one, cancel = (
        f"/api/v1/bookings/{booking.reference}/",
        (f"/api/v1/bookings/{booking.reference}/cancel/"),
    )

    # Nobody signed in: 401 and the challenge, on every bookings call.
    for method, path in (("get", "/api/v1/bookings/"), ("get", one), ("post", cancel)):
        answer = getattr(caller(), method)(path)
        assert (answer.status_code, answer["WWW-Authenticate"]) == (401, CHALLENGE), path
        assert answer.json()["error"]["code"] == "not_authenticated"

    # The client's read-only token: their booking, but no cancelling.
    reader = caller(make_token(world, world.client_user, ["bookings:read"]))
    listed = reader.get("/api/v1/bookings/").json()["results"]
    assert [b["id"] for b in listed] == [str(booking.reference)]
    refused = reader.post(cancel)
    assert refused.status_code == 403
    assert refused.json()["error"] == {
        "code": "permission_denied",
        "message": "This token does not have the bookings:write scope this request needs.",
    }

    # Someone else's token, even with every scope: the booking does not exist for them.
    stranger = world.person("sam@client.example", "Sam Stranger")
    everything = ["bookings:read", "bookings:write", "event_types:read"]
    other = caller(make_token(world, stranger, everything))
    assert other.get("/api/v1/bookings/").json()["results"] == []
    assert other.get(one).status_code == 404
    assert other.post(cancel).status_code == 404

    # The builder's token sees the booking, but only its client may cancel it.
    builder = caller(make_token(world, world.builder_user, everything))
    assert builder.get(one).json()["payments"][0]["card_last4"] is None
    assert builder.post(cancel).status_code == 404

    # Expired: refused from the moment it expires.
    short = make_token(world, world.client_user, everything, days=1)
    expires_at = ApiToken.objects.get(prefix=short[:12]).expires_at
    with time_machine.travel(expires_at + timedelta(seconds=1), tick=False):
        late = caller(short).post(cancel)
    assert late.status_code == 401
    assert late.json()["error"]["code"] == "authentication_failed"
    assert late["WWW-Authenticate"] == f'{CHALLENGE}, error="invalid_token"'

    # Revoked on the tokens page: refused at once.
    writer_secret = make_token(world, world.client_user, everything)
    spare = make_token(world, world.client_user, everything)
    spare_token = ApiToken.objects.get(prefix=spare[:12])
    revoked = world.browser(world.client_user).post(f"/accounts/tokens/{spare_token.pk}/revoke/")
    assert revoked.status_code == 302
    assert caller(spare).post(cancel).status_code == 401
    assert world.state(slot)["booking"] == "confirmed"

    # The client's token with bookings:write cancels, with no CSRF token to send.
    done = caller(writer_secret).post(cancel)
    world.settle_everything()
    assert done.status_code == 200, done.content
    assert done.json()["refund_amount"] == PRICE
    assert world.state(slot)["booking"] == "canceled"
    assert world.state(slot)["refunds"] == [(PRICE, "succeeded", False)]

    refusals = AuditEntry.objects.filter(action="accounts.api_token.refused")
    assert sorted(entry.data["reason"] for entry in refusals) == ["expired", "revoked"]
    assert AuditEntry.objects.filter(action="accounts.api_token.created").count() == 6
    assert AuditEntry.objects.filter(action="accounts.api_token.revoked").count() == 1
