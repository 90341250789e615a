"""The account's API tokens page: make one (password again, clear errors), see it once,
list them in the viewer's zone, revoke one; nobody else's."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from accounts import tokens
from accounts.models import ApiToken, User
from audit.models import AuditEntry
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

URL = "/accounts/tokens/"
TOKEN = re.compile(r'<pre class="new-token"><code>(slp_[0-9A-Za-z]{8}_[0-9A-Za-z]{43})</code>')


def signed_in(user: User) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


def form_id(browser: Client) -> str:
    page = browser.get(URL).content.decode()
    return re.search(r'name="form_id" value="([^"]+)"', page)[1]


def submit(browser: Client, **overrides) -> object:
    data = {
        "name": "Reporting script",
        "scopes": ["bookings:read"],
        "expires_on": (timezone.localdate() + timedelta(days=30)).isoformat(),
        "password": PASSWORD,
        "form_id": form_id(browser),
        **overrides,
    }
    return browser.post(URL, data)


def test_the_page_needs_sign_in() -> None:
    answer = Client().get(URL)
    assert answer.status_code == 302
    assert answer["Location"].startswith("/accounts/login/")


def test_the_form_offers_90_days_and_read_scopes_by_default(owner) -> None:
    page = signed_in(owner).get(URL).content.decode()
    default = (timezone.localdate() + timedelta(days=90)).isoformat()

    assert f'value="{default}"' in page
    assert re.search(r'value="bookings:read"[^>]*checked', page)
    assert re.search(r'value="event_types:read"[^>]*checked', page)
    assert not re.search(r'value="bookings:write"[^>]*checked', page)


def test_a_token_is_shown_once_then_only_its_prefix(owner) -> None:
    browser = signed_in(owner)
    made = submit(browser, scopes=["bookings:read", "bookings:write"])

    assert made.status_code == 200
    secret = TOKEN.search(made.content.decode())[1]
    assert "not shown again" in made.content.decode()
    assert "no-store" in made["Cache-Control"]
    token = ApiToken.objects.get()
    assert (token.name, token.scopes) == ("Reporting script", ["bookings:read", "bookings:write"])
    assert secret.startswith(token.prefix + "_")
    assert tokens.api_token_authenticate(raw=secret, ip=None) == token
    listing = browser.get(URL).content.decode()
    assert token.prefix in listing
    assert secret not in listing
    assert secret not in str(dict(browser.session))


def test_sending_the_form_again_makes_no_second_token(owner) -> None:
    browser = signed_in(owner)
    data = {
        "name": "Once",
        "scopes": ["bookings:read"],
        "expires_on": (timezone.localdate() + timedelta(days=3)).isoformat(),
        "password": PASSWORD,
        "form_id": form_id(browser),
    }
    assert browser.post(URL, data).status_code == 200
    again = browser.post(URL, data, follow=True)

    assert ApiToken.objects.count() == 1
    assert "already sent" in again.content.decode()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": ""}, "This field is required."),
        ({"name": "\x00"}, "Null characters are not allowed."),
        ({"name": "tab\there"}, "control characters"),
        ({"scopes": []}, "Choose at least one scope."),
        ({"scopes": ["admin"]}, "Select a valid choice."),
        ({"expires_on": "next week"}, "Enter a date like 2027-02-28."),
        (
            {"expires_on": "\uff12\uff10\uff12\uff17-\uff10\uff11-\uff10\uff11"},
            "Enter a date like 2027-02-28.",
        ),
        ({"expires_on": "9" * 5000}, "Enter a date like 2027-02-28."),
        ({"expires_on": "2026-06-01"}, "Choose a date after today."),
        ({"expires_on": "2001-01-01"}, "Choose a date after today."),
        ({"password": "wrong"}, "That is not your password."),  # pragma: allowlist secret
        ({"password": PASSWORD + "\x00"}, "Null characters are not allowed."),
    ],
)
def test_a_bad_form_is_refused_with_a_clear_error(owner, overrides, message) -> None:
    with time_machine.travel(datetime(2026, 6, 1, 12, tzinfo=UTC), tick=False):
        answer = submit(signed_in(owner), **overrides)

    assert answer.status_code == 400
    assert message in answer.content.decode()
    assert not ApiToken.objects.exists()


def test_at_most_365_days_ahead(owner) -> None:
    browser = signed_in(owner)
    today = timezone.localdate()
    too_far = submit(browser, expires_on=(today + timedelta(days=366)).isoformat())
    assert too_far.status_code == 400
    latest = (today + timedelta(days=365)).isoformat()
    assert f"A token lasts at most 365 days: choose {latest} or earlier." in (
        too_far.content.decode()
    )
    now = timezone.now()
    with time_machine.travel(now, tick=False):
        assert submit(browser, expires_on=latest).status_code == 200
    assert ApiToken.objects.get().expires_at == now + timedelta(days=365)


def test_dates_are_the_viewers_and_times_name_the_zone(owner) -> None:
    owner.time_zone = "Pacific/Auckland"
    owner.save(update_fields=["time_zone"])
    browser = signed_in(owner)
    # 20:00 UTC on 1 June is already 2 June in Auckland (UTC+12).
    with time_machine.travel(datetime(2026, 6, 1, 20, tzinfo=UTC), tick=False):
        today_there = submit(browser, expires_on="2026-06-02")
        assert today_there.status_code == 400
        assert "Choose a date after today." in today_there.content.decode()
        made = submit(browser, expires_on="2026-06-03")
        assert made.status_code == 200
        assert "2026-06-03 08:00 Pacific/Auckland" in made.content.decode()
        listing = browser.get(URL).content.decode()
    assert "2026-06-02 08:00 Pacific/Auckland" in listing  # made
    assert "2026-06-03 08:00 Pacific/Auckland" in listing  # expires
    assert "never" in listing  # not used yet


def test_five_wrong_passwords_sign_the_person_out(owner) -> None:
    browser = signed_in(owner)
    for _ in range(4):
        assert submit(browser, password="guess").status_code == 400  # pragma: allowlist secret
    last = submit(browser, password="guess")

    assert last.status_code == 302
    assert last["Location"] == "/accounts/login/"
    assert browser.get(URL).status_code == 302  # signed out
    assert AuditEntry.objects.filter(action="accounts.api_token.password_refused").count() == 5
    assert AuditEntry.objects.filter(action="accounts.api_token.signed_out").count() == 1


def test_revoking_stops_the_token_and_only_its_owner_may(owner, stranger) -> None:
    made = tokens.api_token_create(user=owner, name="laptop", scopes=["bookings:read"])
    path = f"/accounts/tokens/{made.token.pk}/revoke/"

    assert signed_in(stranger).post(path).status_code == 404
    assert signed_in(owner).get(path).status_code == 405
    assert ApiToken.objects.get().revoked_at is None
    done = signed_in(owner).post(path, follow=True)

    assert "revoked: it no longer works" in done.content.decode()
    assert ApiToken.objects.get().revoked_at is not None
    answer = Client(headers={"Authorization": f"Bearer {made.secret}"}).get("/api/v1/bookings/")
    assert answer.status_code == 401
    listing = signed_in(owner).get(URL).content.decode()
    assert "revoked " in listing
    assert f"Revoke {made.token.prefix}" not in listing


def test_someone_elses_tokens_are_not_listed(owner, stranger) -> None:
    theirs = tokens.api_token_create(user=stranger, name="theirs", scopes=["bookings:read"])
    assert theirs.token.prefix not in signed_in(owner).get(URL).content.decode()


def test_last_use_shows_when_and_from_where(owner) -> None:
    made = tokens.api_token_create(user=owner, name="cron", scopes=["bookings:read"])
    ApiToken.objects.filter(pk=made.token.pk).update(
        last_used_at=datetime(2026, 3, 1, 9, 30, tzinfo=UTC), last_used_ip="198.51.100.23"
    )
    listing = signed_in(owner).get(URL).content.decode()
    assert "2026-03-01 09:30 UTC from 198.51.100.23" in listing
