"""Session recovery: a person whose session ended mid-booking asks for a link by email;
it works once, for 15 minutes, for that account and the page they were on."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import time_machine
from django.contrib.sessions.models import Session
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import recovery, sessions
from accounts.models import OneTimeLink, User
from audit.models import AuditEntry
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

MINUTE = timedelta(minutes=1)
ENDED = "/accounts/session/ended/"
RECOVER = "/accounts/session/recover/"
# Where Calendly sends the client back after they picked a slot: mid-booking, with the
# invitee's email in the query.
SCHEDULED = "/bookings/scheduled/?" + urlencode(
    {
        "invitee_uuid": "AAAAAAAAAAAAAAAA",
        "invitee_email": "clara@client.example",
        "event_start_time": "2026-12-03T10:00:00+00:00",
    }
)


@pytest.fixture
def clara(db: None) -> User:
    return User.objects.create_user(
        email="clara@client.example", password=PASSWORD, name="Clara Client"
    )


def signed_in(user: User, *, at: str = "/accounts/login/") -> Client:
    browser = Client()
    assert browser.post(at, {"username": user.email, "password": PASSWORD}).status_code == 302
    return browser


def ended_on(user: User, page: str, clock: Any, *, at: str = "/accounts/login/") -> Client:
    """A browser whose session ended (idle) as it opened ``page``."""
    browser = signed_in(user, at=at)
    clock.shift(timedelta(hours=3))
    answer = browser.get(page)
    assert (answer.status_code, answer["Location"]) == (303, ENDED)
    return browser


def ask(browser: Client, capture: Any) -> Any:
    """Ask for the link, and let the worker run (tasks are in-process in tests)."""
    with capture(execute=True):
        return browser.post(RECOVER)


def link_in(email: mail.EmailMessage) -> str:
    [url] = re.findall(r"http://testserver(/accounts/session/recover/[\w-]+/)", email.body)
    return url


def test_a_recovery_link_returns_the_person_to_their_page_once(
    settings: Any, clara: User, django_capture_on_commit_callbacks: Any
) -> None:
    settings.SITE_URL = "http://testserver"
    with time_machine.travel(timezone.now(), tick=False) as clock:
        browser = ended_on(clara, SCHEDULED, clock)
        page = browser.get(ENDED).content.decode()
        assert "Email me a link back to this page" in page

        answer = ask(browser, django_capture_on_commit_callbacks)

        assert answer.status_code == 200
        assert "a link is on its way" in answer.content.decode()
        [email] = mail.outbox
        assert email.to == ["clara@client.example"]
        assert "works once, until" in email.body
        assert "http://testserver/accounts/session/sign-out-everywhere/" in email.body
        url = link_in(email)

        # Opened anywhere (the mail app's browser): the GET only asks, spends nothing.
        phone = Client()
        assert phone.get(url).status_code == 200
        assert phone.get(url).status_code == 200
        assert "_auth_user_id" not in phone.session

        back = phone.post(url)

        assert (back.status_code, back["Location"]) == (303, SCHEDULED)
        assert phone.session["_auth_user_id"] == str(clara.pk)
        booking_page = phone.get(SCHEDULED)
        assert booking_page.status_code == 200
        assert "Continue to payment" in booking_page.content.decode()
        # Once.
        again = Client()
        assert again.post(url).status_code == 410
        assert again.get(url).status_code == 410
        assert "_auth_user_id" not in again.session

    [recovered] = AuditEntry.objects.filter(action="accounts.session.recovered")
    assert recovered.actor_id == recovered.target_id == str(clara.pk)
    assert recovered.category == "security"
    assert recovered.data["page"] == "/bookings/scheduled/"
    [requested] = AuditEntry.objects.filter(action="accounts.session.recovery_requested")
    assert requested.data["user"] == clara.pk
    assert "clara" not in str(recovered.data) + str(requested.data)


def test_the_page_is_kept_sealed(clara: User, django_capture_on_commit_callbacks: Any) -> None:
    """The query of a page can be personal data (Calendly puts the invitee's email in
    it): neither the anonymous session nor the link keeps it in clear."""
    with time_machine.travel(timezone.now(), tick=False) as clock:
        browser = ended_on(clara, SCHEDULED, clock)
        ask(browser, django_capture_on_commit_callbacks)
    stored = [Session.objects.get(pk=browser.session.session_key).session_data]
    stored += list(OneTimeLink.objects.values_list("target", flat=True))
    for text in stored:
        assert "clara" not in text
        assert "scheduled" not in text
    [link] = OneTimeLink.objects.filter(purpose=OneTimeLink.Purpose.RECOVER_SESSION)
    assert sessions.unseal(link.target) == SCHEDULED


def test_a_recovery_link_works_for_15_minutes(
    settings: Any, clara: User, django_capture_on_commit_callbacks: Any
) -> None:
    settings.SITE_URL = "http://testserver"
    with time_machine.travel(timezone.now(), tick=False) as clock:
        browser = ended_on(clara, "/bookings/", clock)
        ask(browser, django_capture_on_commit_callbacks)
        url = link_in(mail.outbox[0])
        clock.shift(15 * MINUTE)
        assert browser.get(url).status_code == 410
        answer = browser.post(url)
    assert answer.status_code == 410
    assert "This link no longer works" in answer.content.decode()
    assert "_auth_user_id" not in browser.session


def test_the_email_names_the_zone_of_its_time(
    settings: Any, clara: User, django_capture_on_commit_callbacks: Any
) -> None:
    User.objects.filter(pk=clara.pk).update(time_zone="Asia/Tokyo")
    start = timezone.datetime(2026, 12, 1, 9, 0, tzinfo=timezone.get_fixed_timezone(0))
    with time_machine.travel(start, tick=False) as clock:
        browser = ended_on(clara, "/bookings/", clock)
        ask(browser, django_capture_on_commit_callbacks)
    # Asked at 12:00 UTC, 21:00 in Tokyo: good until a quarter past.
    assert "until 21:15 Asia/Tokyo" in mail.outbox[0].body


def test_only_the_newest_link_works(
    settings: Any, clara: User, django_capture_on_commit_callbacks: Any
) -> None:
    settings.SITE_URL = "http://testserver"
    with time_machine.travel(timezone.now(), tick=False) as clock:
        browser = ended_on(clara, "/bookings/", clock)
        ask(browser, django_capture_on_commit_callbacks)
        ask(browser, django_capture_on_commit_callbacks)
        first, second = (link_in(email) for email in mail.outbox)
        assert Client().post(first).status_code == 410
        assert Client().post(second)["Location"] == "/bookings/"


def test_staff_get_no_link(clerk_factory: Any, django_capture_on_commit_callbacks: Any) -> None:
    clerk = clerk_factory()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        browser = ended_on(clerk, "/admin/", clock, at="/admin/login/")
        page = browser.get(ENDED).content.decode()
        assert "Staff accounts get no link" in page
        assert f'action="{RECOVER}"' not in page
        answer = ask(browser, django_capture_on_commit_callbacks)  # a hand-made POST
    assert answer.status_code == 200
    assert "Staff accounts get no link" in answer.content.decode()
    assert mail.outbox == []
    assert not OneTimeLink.objects.exists()
    [requested] = AuditEntry.objects.filter(action="accounts.session.recovery_requested")
    assert requested.data["is_staff"] is True


@pytest.fixture
def clerk_factory(db: None) -> Any:
    def make() -> User:
        return User.objects.create_user(
            email="clerk@slotpay.example", password=PASSWORD, name="Carla", is_staff=True
        )

    return make


@pytest.mark.parametrize(
    "change", [{"is_active": False}, {"email_verified_at": None}, {"is_staff": True}]
)
def test_no_link_for_an_account_that_may_not_have_one(
    clara: User, django_capture_on_commit_callbacks: Any, change: dict[str, Any]
) -> None:
    """Closed, never verified (a link signs in whoever reads that mailbox), or made
    staff since: the worker sends nothing. The page answers like any other."""
    with time_machine.travel(timezone.now(), tick=False) as clock:
        browser = ended_on(clara, "/bookings/", clock)
        User.objects.filter(pk=clara.pk).update(**change)
        answer = ask(browser, django_capture_on_commit_callbacks)
    assert answer.status_code == 200
    assert mail.outbox == []
    assert not OneTimeLink.objects.exists()


def test_every_account_costs_the_request_the_same(
    clara: User, clerk_factory: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """Staff or not, the request does the same work (the worker decides): the same
    queries, in the same order."""
    clerk = clerk_factory()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        client_browser = ended_on(clara, "/bookings/", clock)
        staff_browser = ended_on(clerk, "/admin/", clock, at="/admin/login/")
        client_browser.post(RECOVER)  # the hour's first count makes its row: not measured
        shapes = []
        for browser in (client_browser, staff_browser):
            with CaptureQueriesContext(connection) as queries:
                browser.post(RECOVER)
            shapes.append([re.sub(r"'[^']*'|\d+", "?", query["sql"]) for query in queries])
    assert shapes[0] == shapes[1]


def test_a_link_never_leads_to_the_back_office(
    settings: Any, clara: User, django_capture_on_commit_callbacks: Any
) -> None:
    """A client who wandered into /admin/ gets the way back to their bookings instead."""
    settings.SITE_URL = "http://testserver"
    with time_machine.travel(timezone.now(), tick=False) as clock:
        browser = ended_on(clara, "/admin/payments/payment/", clock)
        ask(browser, django_capture_on_commit_callbacks)
        back = Client().post(link_in(mail.outbox[0]))
    assert back["Location"] == "/bookings/"


@pytest.mark.parametrize(
    ("path", "recoverable"),
    [
        ("/bookings/", True),
        ("/bookings/scheduled/?a=1", True),
        ("/admin/", False),
        ("/admin/payments/payment/", False),
        ("/accounts/login/", False),
        ("/accounts/session/ended/", False),
        ("/accounts/session/recover/abc/", False),
        ("/no/such/page/", False),
    ],
)
def test_which_pages_a_link_may_lead_to(path: str, recoverable: bool) -> None:
    assert sessions.recoverable(path) is recoverable


@pytest.mark.parametrize(
    ("candidate", "kept"),
    [
        ("/bookings/?page=2", "/bookings/?page=2"),
        ("http://testserver/bookings/x/?a=b", "/bookings/x/?a=b"),
        ("https://evil.example/bookings/", None),
        ("//evil.example/bookings/", None),
        ("/\\evil.example/", None),
        ("javascript:alert(1)", None),
        ("bookings/", None),
        ("/bookings/é/", None),
        ("/bookings/\x00/", None),
        ("http://[bad/", None),
        ("/bookings/?q=" + "x" * 400, "/bookings/"),
        ("/" + "x" * 400, None),
    ],
)
def test_only_a_local_page_is_a_way_back(rf: Any, candidate: str, kept: str | None) -> None:
    assert sessions.local_path(rf.get("/"), candidate) == kept


def test_the_longest_page_kept_fits_in_a_link() -> None:
    longest = "/bookings/?" + "q" * (sessions.MAX_RETURN_PATH - len("/bookings/?"))
    sealed = sessions.seal(longest)
    assert len(sealed) <= OneTimeLink._meta.get_field("target").max_length
    assert sessions.unseal(sealed) == longest
    assert sessions.unseal("not a sealed value") == ""
    assert sessions.unseal(None) == ""


def test_a_link_issued_before_a_password_reset_is_dead(
    settings: Any, clara: User, django_capture_on_commit_callbacks: Any
) -> None:
    """The reset sets sessions_valid_after (and revokes its own links only)."""
    settings.SITE_URL = "http://testserver"
    with time_machine.travel(timezone.now(), tick=False) as clock:
        browser = ended_on(clara, "/bookings/", clock)
        ask(browser, django_capture_on_commit_callbacks)
        clock.shift(MINUTE)
        User.objects.filter(pk=clara.pk).update(sessions_valid_after=timezone.now())
        assert Client().post(link_in(mail.outbox[0])).status_code == 410


def test_asking_needs_a_session_that_ended(
    client: Client, clara: User, django_capture_on_commit_callbacks: Any
) -> None:
    """Nobody names the account: a browser with no ended session gets nothing, whatever
    it posts."""
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(RECOVER, {"user": clara.pk, "email": clara.email})
    assert (answer.status_code, answer["Location"]) == (303, ENDED)
    assert mail.outbox == []
    assert client.get(RECOVER).status_code == 405


@pytest.mark.parametrize(
    "secret", ["x" * 5000, "%00", "caf%C3%A9", "not-a-link", quote("a b/c", safe="")]
)
def test_a_malformed_link_is_refused(client: Client, secret: str) -> None:
    assert client.get(f"/accounts/session/recover/{secret}/").status_code in (404, 410)
    assert client.post(f"/accounts/session/recover/{secret}/").status_code in (404, 410)


def test_the_task_sends_nothing_for_a_missing_account(db: None) -> None:
    assert recovery.send_recovery_link(987654, sessions.seal("/bookings/")) is False
    assert mail.outbox == []
