"""Sessions: a new id at sign-in and at step-up; absolute and idle limits (shorter for
staff) enforced by the server, whatever the cookie says; sign out everywhere."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
import time_machine
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from accounts import links
from accounts.models import OneTimeLink, User
from accounts.sessions import CLOCK_KEY, SEEN_GRANULARITY_SECONDS
from audit.models import AuditEntry
from tests.conftest import PASSWORD, step_up

pytestmark = pytest.mark.django_db

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
ENDED = "/accounts/session/ended/"


def signed_in(user: User, *, at: str = "/accounts/login/") -> Client:
    """A browser that signed in through the real form (the site's, or the admin's)."""
    browser = Client()
    answer = browser.post(at, {"username": user.email, "password": PASSWORD})
    assert answer.status_code == 302, answer
    return browser


def session_key(browser: Client) -> str:
    return browser.cookies[settings.SESSION_COOKIE_NAME].value


def expired(reason: str) -> list[AuditEntry]:
    return [
        entry
        for entry in AuditEntry.objects.filter(action="accounts.session.expired")
        if entry.data["reason"] == reason
    ]


@pytest.fixture
def clerk(db: None) -> User:
    return User.objects.create_user(
        email="clerk@slotpay.example", password=PASSWORD, name="Carla Clerk", is_staff=True
    )


# --- A new id -----------------------------------------------------------------------------


def test_signing_in_gives_a_new_session_id(owner: User) -> None:
    """Session fixation: an id planted before sign-in is worth nothing after it."""
    planted = SessionStore()
    planted["planted"] = True
    planted.create()
    browser = Client()
    browser.cookies[settings.SESSION_COOKIE_NAME] = planted.session_key
    answer = browser.post("/accounts/login/", {"username": owner.email, "password": PASSWORD})
    assert answer.status_code == 302
    assert session_key(browser) != planted.session_key
    assert not SessionStore().exists(planted.session_key)


def test_a_step_up_gives_a_new_session_id_and_keeps_the_session(clerk: User) -> None:
    browser = signed_in(clerk, at="/admin/login/")
    before = session_key(browser)
    started = browser.session[CLOCK_KEY]["started"]
    step_up(browser)
    after = session_key(browser)
    assert after != before
    assert not SessionStore().exists(before)
    session = browser.session
    assert session["step_up"]["user"] == clerk.pk  # the stamp survived the new id
    assert session[CLOCK_KEY]["started"] == started  # a step-up does not prolong it
    assert browser.get("/admin/").status_code == 200


# --- Limits -------------------------------------------------------------------------------


def test_a_session_idle_two_hours_is_refused(owner: User) -> None:
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        browser = signed_in(owner)
        # Used every 119 minutes, it lives on (well past two hours in all)...
        for _ in range(3):
            clock.shift(timedelta(minutes=119))
            assert browser.get("/bookings/").status_code == 200
        # ...left alone for two hours, it ends.
        clock.shift(2 * HOUR)
        answer = browser.get("/bookings/?page=1")
    assert (answer.status_code, answer["Location"]) == (303, ENDED)
    ended = browser.get(ENDED)
    assert "You were signed out after 2 hours without activity" in ended.content.decode()
    assert "next=%2Fbookings%2F%3Fpage%3D1" in ended.content.decode()  # back where they were
    # Signed out for good: the old session is gone from the store.
    assert browser.get("/bookings/")["Location"].startswith("/accounts/login/")
    [entry] = expired("idle")
    assert entry.actor_id == str(owner.pk)
    assert entry.data["is_staff"] is False
    assert entry.data["page"] == "/bookings/"


def test_a_session_alive_24_hours_is_refused_however_busy(owner: User) -> None:
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        browser = signed_in(owner)
        while timezone.now() + 30 * MINUTE < start + 24 * HOUR:
            clock.shift(30 * MINUTE)
            assert browser.get("/bookings/").status_code == 200, timezone.now() - start
        clock.move_to(start + 24 * HOUR)
        answer = browser.get("/bookings/")
    assert (answer.status_code, answer["Location"]) == (303, ENDED)
    assert "signed in for 24 hours, the longest" in browser.get(ENDED).content.decode()
    assert len(expired("absolute")) == 1
    assert expired("idle") == []


def test_a_staff_session_idle_30_minutes_is_refused_in_the_admin(clerk: User) -> None:
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        browser = signed_in(clerk, at="/admin/login/")
        clock.shift(29 * MINUTE)
        assert browser.get("/admin/").status_code == 200
        clock.shift(30 * MINUTE)
        answer = browser.get("/admin/accounts/user/")
        assert (answer.status_code, answer["Location"]) == (303, ENDED)
        page = browser.get(ENDED).content.decode()
        assert "signed out after 30 minutes without activity" in page
        # Back to the admin's own sign-in, and back to the same page.
        assert "/admin/login/?next=%2Fadmin%2Faccounts%2Fuser%2F" in page
        assert "Staff accounts get no link" in page
        assert browser.get("/admin/")["Location"].startswith("/admin/login/")
    [entry] = expired("idle")
    assert entry.data["is_staff"] is True


def test_a_client_is_not_held_to_the_staff_limits(owner: User) -> None:
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        browser = signed_in(owner)
        # Idle 90 minutes at a time (staff: 30), for nine hours (staff: eight).
        for _ in range(6):
            clock.shift(90 * MINUTE)
            assert browser.get("/bookings/").status_code == 200
        assert timezone.now() - start == 9 * HOUR


def test_a_staff_session_lasts_at_most_eight_hours(clerk: User) -> None:
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        browser = signed_in(clerk, at="/admin/login/")
        while timezone.now() + 25 * MINUTE < start + 8 * HOUR:
            clock.shift(25 * MINUTE)
            assert browser.get("/admin/").status_code == 200
        clock.move_to(start + 8 * HOUR)
        assert browser.get("/admin/")["Location"] == ENDED
    assert len(expired("absolute")) == 1


@pytest.mark.parametrize(
    "case",
    [
        ("SESSION_IDLE_SECONDS", 600, False, "idle"),
        ("SESSION_ABSOLUTE_SECONDS", 600, False, "absolute"),
        ("STAFF_SESSION_IDLE_SECONDS", 300, True, "idle"),
        ("STAFF_SESSION_ABSOLUTE_SECONDS", 300, True, "absolute"),
    ],
)
def test_each_limit_is_a_setting(
    settings: Any, owner: User, clerk: User, case: tuple[str, int, bool, str]
) -> None:
    setting, seconds, staff, reason = case
    setattr(settings, setting, seconds)
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        browser = signed_in(
            clerk if staff else owner, at="/admin/login/" if staff else "/accounts/login/"
        )
        page = "/admin/" if staff else "/bookings/"
        clock.shift(timedelta(seconds=seconds - 1))
        assert browser.get(page).status_code == 200
        clock.move_to(start + timedelta(seconds=2 * seconds))
        assert browser.get(page)["Location"] == ENDED
    assert len(expired(reason)) == 1


def test_last_activity_is_written_at_most_once_a_minute(owner: User) -> None:
    """Each write saves the whole session: not one per request."""
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        browser = signed_in(owner)
        clock.shift(timedelta(seconds=SEEN_GRANULARITY_SECONDS - 1))
        quiet = browser.get("/bookings/")
        clock.shift(timedelta(seconds=2))
        noted = browser.get("/bookings/")
    assert settings.SESSION_COOKIE_NAME not in quiet.cookies
    assert settings.SESSION_COOKIE_NAME in noted.cookies
    assert browser.session[CLOCK_KEY]["seen"] == pytest.approx((start + MINUTE).timestamp(), abs=1)


def test_a_session_without_a_clock_counts_from_the_last_sign_in(owner: User) -> None:
    """A session from before the clock existed gets no fresh lifetime."""
    browser = Client()
    browser.force_login(owner)
    session = browser.session
    session.pop(CLOCK_KEY, None)
    session.save()
    User.objects.filter(pk=owner.pk).update(last_login=timezone.now() - 25 * HOUR)
    assert browser.get("/bookings/")["Location"] == ENDED
    assert len(expired("absolute")) == 1


def test_a_clock_that_went_back_refuses_nothing(owner: User) -> None:
    browser = signed_in(owner)
    with time_machine.travel(timezone.now() - HOUR, tick=False):
        assert browser.get("/bookings/").status_code == 200


# --- What an ended session's request gets -------------------------------------------------


def _idle(browser: Client, clock: Any) -> None:
    clock.shift(2 * HOUR + MINUTE)


def test_a_form_posted_by_an_ended_session_leads_back_to_its_page(owner: User) -> None:
    """The POST is not replayed (its CSRF token and values are the person's to give
    again): the way back is to the page the form was on."""
    reference = uuid4()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        browser = signed_in(owner)
        _idle(browser, clock)
        answer = browser.post(
            f"/bookings/{reference}/pay/",
            HTTP_REFERER=f"http://testserver/bookings/{reference}/",
        )
        assert (answer.status_code, answer["Location"]) == (303, ENDED)
        page = browser.get(ENDED).content.decode()
    assert f"next=%2Fbookings%2F{reference}%2F" in page


def test_a_foreign_referer_is_not_a_way_back(owner: User) -> None:
    with time_machine.travel(timezone.now(), tick=False) as clock:
        browser = signed_in(owner)
        _idle(browser, clock)
        browser.post(f"/bookings/{uuid4()}/pay/", HTTP_REFERER="https://evil.example/bookings/")
        page = browser.get(ENDED).content.decode()
    assert "evil.example" not in page
    assert 'href="/accounts/login/"' in page


def test_the_api_answers_an_ended_session_as_signed_out(owner: User) -> None:
    with time_machine.travel(timezone.now(), tick=False) as clock:
        browser = signed_in(owner)
        assert browser.get("/api/v1/bookings/").status_code == 200
        _idle(browser, clock)
        answer = browser.get("/api/v1/bookings/")
    assert answer.status_code in (401, 403)
    assert answer.json()["error"]["code"] == "not_authenticated"


def test_a_public_page_renders_for_an_ended_session_as_signed_out(owner: User) -> None:
    with time_machine.travel(timezone.now(), tick=False) as clock:
        browser = signed_in(owner)
        _idle(browser, clock)
        answer = browser.get("/builders/")
    assert answer.status_code == 200
    assert 'href="/accounts/login/">Sign in' in answer.content.decode()


def test_an_ended_session_can_sign_in_again_at_once(owner: User) -> None:
    with time_machine.travel(timezone.now(), tick=False) as clock:
        browser = signed_in(owner)
        _idle(browser, clock)
        answer = browser.post("/accounts/login/", {"username": owner.email, "password": PASSWORD})
        assert answer.status_code == 302
        assert browser.get("/bookings/").status_code == 200
    assert "session_ended" not in browser.session


def test_a_huge_or_odd_address_still_gets_the_ended_page(owner: User) -> None:
    with time_machine.travel(timezone.now(), tick=False) as clock:
        browser = signed_in(owner)
        _idle(browser, clock)
        answer = browser.get("/bookings/", {"q": "é\x00" * 500})
        assert (answer.status_code, answer["Location"]) == (303, ENDED)
        page = browser.get(ENDED)
    assert page.status_code == 200
    assert "next=%2Fbookings%2F" in page.content.decode()
    assert "%00" not in page.content.decode()  # too long to keep: the page, not its query


def test_the_ended_page_without_an_ended_session_just_offers_to_sign_in(client: Client) -> None:
    page = client.get(ENDED)
    assert page.status_code == 200
    assert "You are not signed in" in page.content.decode()
    assert 'action="/accounts/session/recover/"' not in page.content.decode()


def test_the_limits_hold_with_signed_cookie_sessions(settings: Any, owner: User) -> None:
    """Nothing about the session is on the server then: the clock rides in the signed
    cookie, and an old copy of the cookie carries an old clock."""
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    with time_machine.travel(timezone.now(), tick=False) as clock:
        browser = signed_in(owner)
        copy = browser.cookies[settings.SESSION_COOKIE_NAME].value
        assert Session.objects.count() == 0
        clock.shift(HOUR)
        assert browser.get("/bookings/").status_code == 200
        clock.shift(2 * HOUR)
        assert browser.get("/bookings/")["Location"] == ENDED
        # The copy taken at sign-in is refused too (older still).
        replay = Client()
        replay.cookies[settings.SESSION_COOKIE_NAME] = copy
        assert replay.get("/bookings/")["Location"] == ENDED


def test_signed_cookie_sessions_end_everywhere_too(settings: Any, owner: User) -> None:
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    laptop, phone = signed_in(owner), signed_in(owner)
    copy = phone.cookies[settings.SESSION_COOKIE_NAME].value
    assert laptop.post("/accounts/session/sign-out-everywhere/").status_code == 303
    assert phone.get("/bookings/")["Location"] == ENDED
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = copy
    assert replay.get("/bookings/")["Location"] == ENDED


# --- Sign out everywhere ------------------------------------------------------------------


def test_signing_out_everywhere_ends_every_session_and_link(owner: User, stranger: User) -> None:
    laptop, phone, other = signed_in(owner), signed_in(owner), signed_in(stranger)
    link = links.issue(
        OneTimeLink.Purpose.RECOVER_SESSION, max_age=15 * MINUTE, user=owner, target=""
    )
    page = laptop.get("/accounts/session/sign-out-everywhere/")
    assert page.status_code == 200
    assert "this one included" in page.content.decode()

    answer = laptop.post("/accounts/session/sign-out-everywhere/")

    assert (answer.status_code, answer["Location"]) == (303, "/accounts/login/")
    assert "signed out on every device" in laptop.get("/accounts/login/").content.decode()
    assert laptop.get("/bookings/")["Location"].startswith("/accounts/login/")
    assert phone.get("/bookings/")["Location"] == ENDED
    assert "signed out on every device" in phone.get(ENDED).content.decode()
    assert other.get("/bookings/").status_code == 200  # someone else's sessions live on
    assert links.peek(link, OneTimeLink.Purpose.RECOVER_SESSION) is None
    owner.refresh_from_db()
    assert owner.sessions_valid_after is not None
    [entry] = AuditEntry.objects.filter(action="accounts.session.signed_out_everywhere")
    assert entry.actor_id == entry.target_id == str(owner.pk)
    assert entry.category == "security"
    assert len(expired("signed_out_everywhere")) == 1
    # Signing in again afterwards works, on any device.
    assert signed_in(owner).get("/bookings/").status_code == 200


def test_a_session_begun_before_a_password_reset_is_refused(owner: User) -> None:
    """The password-reset helper sets ``sessions_valid_after`` itself."""
    browser = signed_in(owner)
    User.objects.filter(pk=owner.pk).update(sessions_valid_after=timezone.now())
    assert browser.get("/bookings/")["Location"] == ENDED
    assert signed_in(owner).get("/bookings/").status_code == 200


def test_signing_out_everywhere_is_a_signed_in_post(client: Client, owner: User) -> None:
    assert client.get("/accounts/session/sign-out-everywhere/")["Location"].startswith(
        "/accounts/login/"
    )
    assert client.post("/accounts/session/sign-out-everywhere/")["Location"].startswith(
        "/accounts/login/"
    )
    browser = signed_in(owner)
    assert browser.put("/accounts/session/sign-out-everywhere/").status_code == 405
    owner.refresh_from_db()
    assert owner.sessions_valid_after is None


def test_the_sign_out_everywhere_time_is_the_boundary(owner: User) -> None:
    at = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.get_fixed_timezone(0))
    with time_machine.travel(at, tick=False) as clock:
        before = signed_in(owner)
        clock.shift(MINUTE)
        User.objects.filter(pk=owner.pk).update(sessions_valid_after=timezone.now())
        after = signed_in(owner)
        clock.shift(MINUTE)
        assert before.get("/bookings/")["Location"] == ENDED
        assert after.get("/bookings/").status_code == 200
