"""The pre-verification takeover, end to end, against the live server and the sandboxes.

An attacker signs up with the victim's address (never verified) and wants a lasting
way in through the API. The real owner then resets the password (which verifies the
address), books and pays. Whatever token the attacker holds must read and cancel none
of it.
"""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts.models import ApiToken, User
from audit.models import AuditEntry
from bookings.models import Booking
from tests.bookings.world import World, world

__all__ = ["world"]

pytestmark = pytest.mark.django_db(transaction=True)

VICTIM = "victor@client.example"
ATTACKERS = "the attacker's passphrase 99"  # pragma: allowlist secret
OWNERS = "the owner's own passphrase 41"  # pragma: allowlist secret
RESET_LINK = re.compile(r"https?://\S+/accounts/password/reset/([A-Za-z0-9_-]+)/")
TOKEN = re.compile(r'<pre class="new-token"><code>(slp_[0-9A-Za-z]{8}_[0-9A-Za-z]{43})</code>')
FORM_ID = re.compile(r'name="form_id" value="([^"]+)"')


def make_token(browser: Client, password: str) -> Client:
    page = browser.get("/accounts/tokens/").content.decode()
    form_id = FORM_ID.search(page)
    return browser.post(
        "/accounts/tokens/",
        {
            "name": "sync",
            "scopes": ["bookings:read", "bookings:write"],
            "expires_on": timezone.localdate().replace(year=timezone.localdate().year + 1),
            "password": password,
            "form_id": form_id[1] if form_id else "",
        },
    )


def api(secret: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {secret}"})


def test_a_token_from_before_verification_never_reaches_the_owners_bookings(
    world: World,
) -> None:
    # The attacker signs up with the victim's address: signed in, not verified.
    attacker = Client()
    signed_up = attacker.post(
        "/accounts/signup/",
        {
            "email": VICTIM,
            "name": "Not Victor",
            "password1": ATTACKERS,
            "password2": ATTACKERS,
            "time_zone": "",
        },
    )
    assert signed_up.status_code == 302
    account = User.objects.get_by_email(VICTIM)
    assert account.email_verified_at is None

    # No token is made for an unverified account, and the page says why.
    refused = make_token(attacker, ATTACKERS)
    assert refused.status_code == 403
    assert "verify your email address first" in refused.content.decode()
    assert not ApiToken.objects.exists()

    # A token the account had anyway (made before this rule) does not work either.
    User.objects.filter(pk=account.pk).update(email_verified_at=timezone.now())
    made = make_token(attacker, ATTACKERS)
    secret = TOKEN.search(made.content.decode())[1]
    User.objects.filter(pk=account.pk).update(email_verified_at=None)
    unverified = api(secret).get("/api/v1/bookings/")
    assert unverified.status_code == 401
    assert "verify your email address" in unverified.json()["error"]["message"]

    # The owner resets the password by email: that verifies the address.
    owner = Client()
    owner.post("/accounts/password/reset/", {"email": VICTIM})
    link = RESET_LINK.findall(mail.outbox[-1].body)[-1]
    reset = owner.post(
        f"/accounts/password/reset/{link}/",
        {"new_password1": OWNERS, "new_password2": OWNERS},
        follow=True,
    )
    assert "every API token revoked" in reset.content.decode()
    account.refresh_from_db()
    assert account.email_verified_at is not None
    revoked_all = AuditEntry.objects.get(action="accounts.api_token.revoked_all")
    assert revoked_all.data == {"count": 1, "reason": "password_reset"}

    # The owner books and pays.
    slot = world.book(account)
    world.pay(slot)
    world.deliver()
    world.retry_waiting()
    booking = slot.booking
    assert booking.status == Booking.Status.CONFIRMED

    # The attacker's token reads nothing and cancels nothing.
    attackers_api = api(secret)
    listing = attackers_api.get("/api/v1/bookings/")
    assert listing.status_code == 401
    assert "revoked" in listing.json()["error"]["message"]
    assert attackers_api.get(f"/api/v1/bookings/{booking.reference}/").status_code == 401
    cancel = attackers_api.post(f"/api/v1/bookings/{booking.reference}/cancel/")
    assert cancel.status_code == 401
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.CONFIRMED
    # Nor can the attacker's session make a new one: it ended with the reset.
    again = make_token(attacker, ATTACKERS)
    assert again.status_code in (302, 303)
    assert ApiToken.objects.filter(revoked_at__isnull=True).count() == 0

    # The owner's own token, made now, sees the booking.
    owners_browser = Client()
    signed_in = owners_browser.post("/accounts/login/", {"username": VICTIM, "password": OWNERS})
    assert signed_in.status_code == 302
    own = TOKEN.search(make_token(owners_browser, OWNERS).content.decode())[1]
    mine = api(own).get("/api/v1/bookings/").json()
    assert [row["id"] for row in mine["results"]] == [str(booking.reference)]
