"""Email verification: an unverified account can browse but not book, and is told why;
the link works once, expires, is bound to the address it was sent to, and signs
nobody in."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts.models import OneTimeLink, User
from audit.models import AuditEntry
from bookings.models import PolicyConsent
from tests.bookings.factories import make_event_type
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

LINK = re.compile(r"https?://\S+/accounts/verify/([A-Za-z0-9_-]+)/")


@pytest.fixture
def newcomer(db) -> User:
    return User.objects.create_user(
        email="newcomer@example.org", password=PASSWORD, name="Nell", email_verified_at=None
    )


@pytest.fixture
def browser(newcomer) -> Client:
    signed_in = Client()
    signed_in.force_login(newcomer)
    return signed_in


def resend(browser: Client, capture, **data: str):
    with capture(execute=True):
        return browser.post("/accounts/verify/resend/", data)


def last_link() -> str:
    return LINK.findall(mail.outbox[-1].body)[-1]


def test_an_unverified_account_cannot_book_and_is_told_why_then_can(
    browser, newcomer, owner, django_capture_on_commit_callbacks
) -> None:
    event_type = make_event_type(owner.builders.get())
    page = browser.get(f"/sessions/{event_type.pk}/").content.decode()
    assert "Please verify your email address before booking" in page
    assert 'action="/accounts/verify/resend/"' in page
    assert "Choose a time" not in page

    refused = browser.post(f"/sessions/{event_type.pk}/", {"consent": "yes", "policy_version": "1"})
    assert refused.status_code == 403
    assert "Please verify your email address first" in refused.content.decode()
    assert not PolicyConsent.objects.exists()

    # The button on the page sends a link, and comes back to the page.
    back = resend(browser, django_capture_on_commit_callbacks, next=f"/sessions/{event_type.pk}/")
    assert back["Location"] == f"/sessions/{event_type.pk}/"
    done = browser.post(f"/accounts/verify/{last_link()}/")
    assert done.status_code == 200
    assert "Email address verified" in done.content.decode()

    allowed = browser.post(f"/sessions/{event_type.pk}/", {"consent": "yes", "policy_version": "1"})
    assert allowed.status_code == 302
    assert PolicyConsent.objects.filter(user=newcomer).count() == 1


def test_the_link_works_once(browser, newcomer, django_capture_on_commit_callbacks) -> None:
    resend(browser, django_capture_on_commit_callbacks)
    secret = last_link()
    # Opening the link (a mail scanner, a preview) spends nothing.
    assert browser.get(f"/accounts/verify/{secret}/").status_code == 200
    assert browser.get(f"/accounts/verify/{secret}/").status_code == 200
    assert browser.post(f"/accounts/verify/{secret}/").status_code == 200
    newcomer.refresh_from_db()
    assert newcomer.email_verified_at is not None
    again = browser.post(f"/accounts/verify/{secret}/")
    assert again.status_code == 410
    assert "expired or was already used" in again.content.decode()
    assert browser.get(f"/accounts/verify/{secret}/").status_code == 410
    assert AuditEntry.objects.filter(action="accounts.email.verified").count() == 1


def test_the_link_expires(browser, newcomer, django_capture_on_commit_callbacks, settings) -> None:
    resend(browser, django_capture_on_commit_callbacks)
    secret = last_link()
    hours = settings.EMAIL_VERIFICATION_MAX_AGE_HOURS
    with time_machine.travel(timezone.now() + timedelta(hours=hours, seconds=1)):
        assert browser.post(f"/accounts/verify/{secret}/").status_code == 410
    newcomer.refresh_from_db()
    assert newcomer.email_verified_at is None


def test_the_link_still_works_just_before_it_expires(
    browser, newcomer, django_capture_on_commit_callbacks, settings
) -> None:
    resend(browser, django_capture_on_commit_callbacks)
    secret = last_link()
    hours = settings.EMAIL_VERIFICATION_MAX_AGE_HOURS
    with time_machine.travel(timezone.now() + timedelta(hours=hours, seconds=-5)):
        assert browser.post(f"/accounts/verify/{secret}/").status_code == 200
    newcomer.refresh_from_db()
    assert newcomer.email_verified_at is not None


def test_a_new_link_replaces_the_old(browser, django_capture_on_commit_callbacks) -> None:
    resend(browser, django_capture_on_commit_callbacks)
    first = last_link()
    resend(browser, django_capture_on_commit_callbacks)
    second = last_link()
    assert first != second
    assert browser.post(f"/accounts/verify/{first}/").status_code == 410
    assert browser.post(f"/accounts/verify/{second}/").status_code == 200
    assert AuditEntry.objects.filter(action="accounts.email.verification_resent").count() == 2


def test_the_link_is_for_the_address_it_was_sent_to(
    newcomer, django_capture_on_commit_callbacks
) -> None:
    browser = Client()
    browser.force_login(newcomer)
    resend(browser, django_capture_on_commit_callbacks)
    old_secret = last_link()
    # The address changes (with a new link of its own); the old link must not verify it.
    newcomer.email = "someone.else@example.org"
    newcomer.save()
    OneTimeLink.objects.filter(used_at__isnull=True).update(
        expires_at=timezone.now() + timedelta(1)
    )
    refused = browser.post(f"/accounts/verify/{old_secret}/")
    assert refused.status_code == 410
    assert "no longer has" in refused.content.decode()
    newcomer.refresh_from_db()
    assert newcomer.email_verified_at is None
    entry = AuditEntry.objects.get(action="accounts.email.verification_refused")
    assert entry.data == {"reason": "address_changed"}


def test_following_the_link_signs_nobody_in(
    browser, newcomer, django_capture_on_commit_callbacks
) -> None:
    resend(browser, django_capture_on_commit_callbacks)
    stranger_browser = Client()
    done = stranger_browser.post(f"/accounts/verify/{last_link()}/")
    assert done.status_code == 200
    assert "_auth_user_id" not in stranger_browser.session
    assert stranger_browser.get("/accounts/")["Location"].startswith("/accounts/login/")
    newcomer.refresh_from_db()
    assert newcomer.email_verified_at is not None


def test_a_verified_account_is_sent_no_link(browser, newcomer, stranger) -> None:
    verified = Client()
    verified.force_login(stranger)
    answer = verified.post("/accounts/verify/resend/", {"next": "https://evil.example/"})
    assert answer["Location"] == "/accounts/"  # not another site
    assert mail.outbox == []


@pytest.mark.parametrize(
    "secret", ["x", "a" * 65, "%00", "ünïcode", "../../etc", "abc" * 14 + "=="]
)
def test_a_malformed_link_is_refused_quietly(client, secret) -> None:
    answer = client.post(f"/accounts/verify/{secret}/")
    assert answer.status_code in (404, 410)


def test_resending_needs_a_signed_in_account(client) -> None:
    answer = client.post("/accounts/verify/resend/")
    assert answer.status_code == 302
    assert answer["Location"].startswith("/accounts/login/")
