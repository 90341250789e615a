"""Step-up: the password again (and a TOTP code once enrolled) before an action that
moves money or rights; absolute window; audited; five wrong answers sign you out."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client, RequestFactory
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User
from audit.models import AuditEntry
from core import stepup
from tests.conftest import PASSWORD, step_up

pytestmark = pytest.mark.django_db

WRONG = "nope"  # pragma: allowlist secret


@pytest.fixture
def clerk(db: None) -> User:
    user = User.objects.create_user(
        email="clerk@slotpay.example", password=PASSWORD, name="Carla Clerk", is_staff=True
    )
    user.groups.add(Group.objects.get(name="Finance"))
    return user


@pytest.fixture
def browser(clerk: User) -> Client:
    client = Client()
    client.force_login(clerk)
    return client


def _stamped(client: Client) -> bool:
    request = RequestFactory().get("/")
    request.session = client.session
    request.user = User.objects.get(pk=client.session["_auth_user_id"])
    return stepup.is_stepped_up(request)


def _code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def _throttle_passes(device: TOTPDevice) -> None:
    """django-otp refuses every code for 1, 2, 4... s after a wrong one: as if waited."""
    TOTPDevice.objects.filter(pk=device.pk).update(
        throttling_failure_count=0, throttling_failure_timestamp=None
    )


def test_signing_in_does_not_step_up(browser: Client) -> None:
    assert not _stamped(browser)


def test_the_password_steps_up_and_returns_to_the_action(browser: Client, clerk: User) -> None:
    page = browser.get("/accounts/step-up/?next=/admin/payments/")
    assert page.status_code == 200
    assert b"Confirm it is you" in page.content

    answer = browser.post("/accounts/step-up/", {"password": PASSWORD, "next": "/admin/payments/"})

    assert (answer.status_code, answer["Location"]) == (302, "/admin/payments/")
    assert _stamped(browser)
    entry = AuditEntry.objects.get(action="accounts.step_up.succeeded")
    assert (entry.actor_id, entry.data["method"]) == (str(clerk.pk), "password")


def test_next_never_leaves_the_site(browser: Client) -> None:
    answer = browser.post(
        "/accounts/step-up/", {"password": PASSWORD, "next": "https://evil.example/x"}
    )
    assert answer["Location"] == "/admin/"


def test_a_wrong_password_is_refused_and_audited(browser: Client) -> None:
    page = browser.post("/accounts/step-up/", {"password": "wrong", "next": "/admin/"})

    assert page.status_code == 200
    assert b"That is not your password." in page.content
    assert not _stamped(browser)
    assert AuditEntry.objects.filter(action="accounts.step_up.failed").count() == 1


@pytest.mark.parametrize("password", ["x" * 5000, "nul\x00byte", "пароль", ""])
def test_hostile_passwords_are_refused_without_error(browser: Client, password: str) -> None:
    page = browser.post("/accounts/step-up/", {"password": password, "next": "/admin/"})
    assert page.status_code == 200
    assert not _stamped(browser)


def test_five_wrong_answers_sign_the_person_out(browser: Client, clerk: User) -> None:
    for _ in range(4):
        assert browser.post("/accounts/step-up/", {"password": WRONG}).status_code == 200

    answer = browser.post("/accounts/step-up/", {"password": PASSWORD[:-1]})

    assert answer.status_code == 302
    assert answer["Location"].startswith("/admin/login/")
    assert "_auth_user_id" not in browser.session
    assert AuditEntry.objects.filter(
        action="accounts.step_up.signed_out", actor_id=str(clerk.pk)
    ).exists()


def test_the_window_is_absolute_and_per_user(browser: Client, clerk: User, settings: Any) -> None:
    step_up(browser)
    session = browser.session
    session[stepup.SESSION_KEY]["at"] = time.time() - settings.STEP_UP_MAX_AGE_SECONDS - 1
    session.save()
    assert not _stamped(browser)

    step_up(browser)
    session = browser.session
    session[stepup.SESSION_KEY]["user"] = clerk.pk + 1000  # a stamp for someone else
    session.save()
    assert not _stamped(browser)


def test_an_enrolled_device_makes_the_code_compulsory(browser: Client, clerk: User) -> None:
    device = TOTPDevice.objects.create(user=clerk, name="phone", confirmed=True)

    without = browser.post("/accounts/step-up/", {"password": PASSWORD, "next": "/admin/"})
    assert without.status_code == 200
    assert not _stamped(browser)
    wrong = browser.post(
        "/accounts/step-up/", {"password": PASSWORD, "otp_token": "000000", "next": "/admin/"}
    )
    assert wrong.status_code == 200
    assert not _stamped(browser)
    _throttle_passes(device)

    step_up(browser, otp_token=_code(device))

    assert _stamped(browser)
    entry = AuditEntry.objects.filter(action="accounts.step_up.succeeded").get()
    assert entry.data["method"] == "password+totp"


def test_a_used_code_cannot_be_replayed(browser: Client, clerk: User) -> None:
    device = TOTPDevice.objects.create(user=clerk, name="phone", confirmed=True)
    code = _code(device)
    step_up(browser, otp_token=code)
    stepup_session = browser.session
    stepup_session.pop(stepup.SESSION_KEY)
    stepup_session.save()

    again = browser.post(
        "/accounts/step-up/", {"password": PASSWORD, "otp_token": code, "next": "/admin/"}
    )

    assert again.status_code == 200
    assert not _stamped(browser)


def test_groups_that_must_use_totp_cannot_step_up_without_it(
    browser: Client, settings: Any
) -> None:
    settings.STEP_UP_TOTP_GROUPS = ["Finance"]

    page = browser.post("/accounts/step-up/", {"password": PASSWORD, "next": "/admin/"})

    assert page.status_code == 200
    assert b"needs an authenticator app" in page.content
    assert not _stamped(browser)


def test_staff_enrol_an_authenticator_app(browser: Client, clerk: User) -> None:
    refused = browser.post("/accounts/two-factor/", {"step": "start", "password": "nope"})
    assert refused.status_code == 200
    assert not TOTPDevice.objects.exists()

    browser.post("/accounts/two-factor/", {"step": "start", "password": PASSWORD})
    page = browser.get("/accounts/two-factor/")
    assert b"QR code" in page.content
    device = TOTPDevice.objects.get(user=clerk, confirmed=False)
    browser.post("/accounts/two-factor/", {"step": "confirm", "otp_token": "123"})
    assert not TOTPDevice.objects.get(pk=device.pk).confirmed
    _throttle_passes(device)

    browser.post("/accounts/two-factor/", {"step": "confirm", "otp_token": _code(device)})

    assert TOTPDevice.objects.get(pk=device.pk).confirmed
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"accounts.totp.enrolment_started", "accounts.totp.enrolled"} <= actions


def test_the_step_up_page_needs_a_signed_in_person(client: Client) -> None:
    answer = client.post("/accounts/step-up/", {"password": PASSWORD})
    assert answer.status_code == 302
    assert "/admin/login/" in answer["Location"]


def test_an_action_the_person_may_not_take_is_refused_without_asking_for_a_password(
    browser: Client, clerk: User
) -> None:
    """Only an action on offer to this person sends them to step up; for any other
    the admin refuses at once (nothing is done), not after a password prompt."""
    clerk.groups.clear()
    clerk.user_permissions.add(Permission.objects.get(codename="view_refundapproval"))

    answer = browser.post(
        "/admin/payments/refundapproval/",
        {"action": "approve_selected", "_selected_action": ["1"]},
    )

    assert not answer.get("Location", "").startswith("/accounts/step-up/")
    assert answer.status_code in (200, 302, 403)


def test_an_enrolled_person_cannot_start_a_second_enrolment(browser: Client, clerk: User) -> None:
    TOTPDevice.objects.create(user=clerk, name="phone", confirmed=True)

    browser.post("/accounts/two-factor/", {"step": "start", "password": PASSWORD})

    assert list(TOTPDevice.objects.values_list("confirmed", flat=True)) == [True]


def test_no_one_gives_a_staff_member_an_authenticator_key(clerk: User) -> None:
    """Not even a superuser: a key someone else chose is no second factor. A
    superuser may only remove a device (a lost phone), stepped up and audited."""
    device = TOTPDevice.objects.create(user=clerk, name="phone", confirmed=True)
    root = User.objects.create_superuser(email="root@slotpay.example", password=PASSWORD)
    admin = Client()
    admin.force_login(root)

    added = admin.post(
        "/admin/otp_totp/totpdevice/add/",
        {"user": clerk.pk, "name": "mine", "key": "31" * 20, "confirmed": "on"},
    )
    changed = admin.post(f"/admin/otp_totp/totpdevice/{device.pk}/change/", {"key": "32" * 20})
    unconfirmed = admin.post(f"/admin/otp_totp/totpdevice/{device.pk}/delete/", {"post": "yes"})

    assert (added.status_code, changed.status_code) == (403, 403)
    assert unconfirmed["Location"].startswith("/accounts/step-up/")
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    step_up(admin)
    assert (
        admin.post(f"/admin/otp_totp/totpdevice/{device.pk}/delete/", {"post": "yes"}).status_code
        == 302
    )
    assert not TOTPDevice.objects.exists()
    removed = AuditEntry.objects.get(action="accounts.totp.removed")
    assert (removed.actor_id, removed.target_id) == (str(root.pk), str(clerk.pk))


def test_staff_cannot_see_anyones_authenticator_devices(browser: Client, clerk: User) -> None:
    clerk.user_permissions.add(*Permission.objects.filter(codename__endswith="totpdevice"))
    assert browser.get("/admin/otp_totp/totpdevice/").status_code == 403
