"""The account page: profile, password, recent sign-ins (in the viewer's zone, named),
links to the data requests (and tokens, once they exist); a new email is verified
again, needs the password, and the former address is told."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.core import mail
from django.test import Client
from django.urls import NoReverseMatch, reverse

from accounts.models import OneTimeLink, SignIn, User
from audit.models import AuditEntry
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(stranger) -> Client:
    signed_in = Client()
    signed_in.force_login(stranger)
    return signed_in


def save_profile(browser: Client, capture, **fields: str):
    data = {"name": "Sam", "email": "stranger@example.net", "time_zone": "", **fields}
    with capture(execute=True):
        return browser.post("/accounts/profile/", data)


def test_the_page_needs_a_signed_in_account(client) -> None:
    answer = client.get("/accounts/")
    assert answer["Location"].startswith("/accounts/login/")


def test_the_page_holds_profile_password_sign_ins_and_data_requests(browser) -> None:
    answer = browser.get("/accounts/")
    page = answer.content.decode()
    assert answer.status_code == 200
    assert "no-store" in answer["Cache-Control"]
    for section in ("Profile", "Password", "Recent sign-ins", "Your data"):
        assert f"<h2>{section}</h2>" in page
    assert 'href="/accounts/privacy/"' in page
    assert 'value="stranger@example.net"' in page
    assert "Your email address is verified." in page
    # Pages of other parts of the project, linked once their URL exists.
    for name, marker in (
        ("accounts:tokens", "API tokens"),
        ("accounts:sign_out_everywhere", "Sign out everywhere"),
    ):
        try:
            url = reverse(name)
        except NoReverseMatch:
            assert marker not in page
        else:
            assert url in page


def test_the_nav_links_to_the_account_or_to_sign_up(client, browser) -> None:
    assert 'href="/accounts/"' in browser.get("/builders/").content.decode()
    signed_out = client.get("/builders/").content.decode()
    assert 'href="/accounts/signup/"' in signed_out


def test_recent_sign_ins_show_the_last_ten_in_the_viewers_zone(stranger, browser) -> None:
    stranger.time_zone = "Asia/Tokyo"
    stranger.save()
    SignIn.objects.all().delete()  # the fixture's own sign-in
    for day in range(1, 13):
        SignIn.objects.create(
            user=stranger,
            at=datetime(2026, 11, day, 1, 30, tzinfo=UTC),
            network="203.0.113.0/24",
            device="Firefox on Linux",
        )
    page = browser.get("/accounts/").content.decode()
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td></tr>", page)
    assert len(rows) == 10
    assert rows[0] == ("2026-11-12 10:30 Asia/Tokyo", "203.0.113.0/24", "Firefox on Linux")
    assert rows[-1][0] == "2026-11-03 10:30 Asia/Tokyo"


def test_someone_elses_sign_ins_are_not_shown(stranger, owner, browser) -> None:
    SignIn.objects.create(user=owner, network="198.51.100.0/24", device="Safari on iOS")
    assert "198.51.100.0/24" not in browser.get("/accounts/").content.decode()


def test_name_and_time_zone_are_saved_and_audited(
    stranger, browser, django_capture_on_commit_callbacks
) -> None:
    answer = save_profile(
        browser, django_capture_on_commit_callbacks, name="Samira Q", time_zone="America/Lima"
    )
    assert (answer.status_code, answer["Location"]) == (302, "/accounts/")
    stranger.refresh_from_db()
    assert (stranger.name, stranger.time_zone) == ("Samira Q", "America/Lima")
    assert stranger.email_verified_at is not None
    entry = AuditEntry.objects.get(action="accounts.user.changed")
    assert entry.data == {"fields": ["name", "time_zone"], "via": "account_page"}
    assert mail.outbox == []


def test_a_new_email_needs_the_password(stranger, browser, django_capture_on_commit_callbacks):
    answer = save_profile(browser, django_capture_on_commit_callbacks, email="new@example.org")
    assert answer.status_code == 400
    assert "current password is needed" in answer.content.decode()
    stranger.refresh_from_db()
    assert stranger.email == "stranger@example.net"


def test_a_new_email_is_verified_again_and_the_former_address_is_told(
    stranger, browser, django_capture_on_commit_callbacks
) -> None:
    answer = save_profile(
        browser,
        django_capture_on_commit_callbacks,
        email="New@Example.org",
        current_password=PASSWORD,
    )
    assert answer.status_code == 302
    stranger.refresh_from_db()
    assert (stranger.email, stranger.email_verified_at) == ("New@example.org", None)
    assert User.objects.get_by_email("new@example.org") == stranger
    recipients = sorted(m.to[0] for m in mail.outbox)
    assert recipients == ["New@example.org", "stranger@example.net"]
    verification = next(m for m in mail.outbox if m.to == ["New@example.org"])
    secret = re.search(r"/accounts/verify/([A-Za-z0-9_-]+)/", verification.body)[1]
    assert browser.post(f"/accounts/verify/{secret}/").status_code == 200
    stranger.refresh_from_db()
    assert stranger.email_verified_at is not None
    entry = AuditEntry.objects.get(action="accounts.user.changed")
    assert "example" not in str(entry.data)


def test_an_address_in_use_cannot_be_taken(
    stranger, owner, browser, django_capture_on_commit_callbacks
) -> None:
    answer = save_profile(
        browser,
        django_capture_on_commit_callbacks,
        email="owner@example.com",
        current_password=PASSWORD,
    )
    assert answer.status_code == 400
    assert "cannot be used" in answer.content.decode()


@pytest.mark.parametrize("candidate", ["owner@example.com", "nobody@example.org"])
def test_a_wrong_password_says_only_that_whatever_the_address(
    owner, stranger, browser, django_capture_on_commit_callbacks, candidate
) -> None:
    """Otherwise the form tells whether an address has an account, to anyone with a
    session and without the password."""
    answer = save_profile(
        browser, django_capture_on_commit_callbacks, email=candidate, current_password="x"
    )
    assert answer.status_code == 400
    page = answer.content.decode()
    assert "current password is needed" in page
    assert "cannot be used" not in page
    assert answer.context["profile_form"].errors == {
        "current_password": ["Your current password is needed, and correct."]
    }
    stranger.refresh_from_db()
    assert stranger.email == "stranger@example.net"


@pytest.mark.parametrize(
    "name", ["Sam\u202eevil", "\u2066Sam", "Sam\u200bQ", "Sam\x1b[31m", "Sam\u2028Q"]
)
def test_a_name_with_control_or_format_characters_is_refused(
    stranger, browser, django_capture_on_commit_callbacks, name
) -> None:
    answer = save_profile(browser, django_capture_on_commit_callbacks, name=name)
    assert answer.status_code == 400
    assert "cannot hold control characters" in answer.content.decode()
    stranger.refresh_from_db()
    assert stranger.name == "Sam"


def test_a_name_is_kept_without_surrounding_spaces(
    stranger, browser, django_capture_on_commit_callbacks
) -> None:
    save_profile(browser, django_capture_on_commit_callbacks, name="\u3000 Zoë 山田 \t")
    stranger.refresh_from_db()
    assert stranger.name == "Zoë 山田"


def test_the_former_address_links_stop_working(
    stranger, browser, django_capture_on_commit_callbacks
) -> None:
    from datetime import timedelta

    from accounts import links

    reset = links.issue(
        OneTimeLink.Purpose.RESET_PASSWORD,
        max_age=timedelta(hours=1),
        user=stranger,
        email=stranger.email,
    )
    save_profile(
        browser,
        django_capture_on_commit_callbacks,
        email="moved@example.org",
        current_password=PASSWORD,
    )
    assert links.peek(reset, OneTimeLink.Purpose.RESET_PASSWORD) is None


@pytest.mark.parametrize(
    "fields",
    [{"name": "x" * 201}, {"time_zone": "Nowhere/Land"}, {"email": "bad"}, {"name": "a\x00"}],
)
def test_bad_profile_input_is_told(browser, django_capture_on_commit_callbacks, fields) -> None:
    answer = save_profile(browser, django_capture_on_commit_callbacks, **fields)
    assert answer.status_code == 400
    assert 'class="error"' in answer.content.decode()


def test_an_unverified_account_is_offered_the_link_again(browser, stranger) -> None:
    stranger.email_verified_at = None
    stranger.save()
    page = browser.get("/accounts/").content.decode()
    assert "not verified yet" in page
    assert 'action="/accounts/verify/resend/"' in page
