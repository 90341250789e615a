"""The quarterly access review: who may see it and sign it, what it flags, how the
sign-off is recorded, and the reminder when one is due."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import access_review
from accounts.models import User
from accounts.roles import STAFF_GROUP_PERMISSIONS
from accounts.tasks import remind_access_review
from audit.models import AuditEntry
from audit.services import verify_chain
from core.models import Alert, OutboxMessage
from tests.conftest import PASSWORD, step_up

pytestmark = pytest.mark.django_db

PAGE = "/admin/accounts/user/access-review/"
NOTE = "Checked every account against the rota; ticket SEC-42 removes the extras."


def _person(email: str, *groups: str, staff: bool = True, superuser: bool = False) -> User:
    user = User.objects.create_user(
        email=email,
        password=PASSWORD,
        name=email.split("@", maxsplit=1)[0].title(),
        is_staff=staff,
        is_superuser=superuser,
    )
    for group in groups:
        user.groups.add(Group.objects.get(name=group))
    return user


def _signed_in(user: User) -> Client:
    browser = Client()
    browser.force_login(user)  # stamps last_login, as signing in does
    return browser


def _rows(page) -> dict[int, tuple[str, str]]:
    """user id -> (inactive, over-privileged), as the page's table marks them."""
    return {
        int(pk): (inactive, over)
        for pk, inactive, over in re.findall(
            r'data-user="(\d+)" data-inactive="(\w+)" data-over-privileged="(\w+)"',
            page.content.decode(),
        )
    }


def _fingerprint(page) -> str:
    match = re.search(r'name="reviewed" value="([0-9a-f]{64})"', page.content.decode())
    assert match, "the sign-off form carries the review's fingerprint"
    return match.group(1)


def _sign_offs() -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=access_review.SIGNED_OFF))


# (who, may open and sign the review); None is a superuser.
ROLES = [("Support", False), ("Finance", False), ("Privacy", False), ("Auditor", True)]


@pytest.mark.parametrize(("group", "allowed"), [*ROLES, (None, True)])
def test_only_auditors_and_superusers_see_and_sign_the_access_review(
    group: str | None, allowed: bool
) -> None:
    member = _person(
        f"{group or 'root'}@slotpay.example".lower(),
        *([group] if group else []),
        superuser=group is None,
    )
    browser = _signed_in(member)

    page = browser.get(PAGE)
    step_up(browser)
    signed = browser.post(PAGE, {"note": NOTE, "reviewed": "0" * 64})

    if allowed:
        assert page.status_code == 200
        assert b"Quarterly access review" in page.content
        assert signed.status_code == 200  # a stale fingerprint: shown again, not signed
    else:
        assert page.status_code == signed.status_code == 403
        assert b"Back to the back-office" in page.content  # the admin's own 403
        assert b"Quarterly access review" not in page.content
    assert _sign_offs() == []


def test_a_client_is_sent_to_sign_in_and_never_sees_the_review() -> None:
    client = _person("clara@example.com", staff=False)

    page = _signed_in(client).get(PAGE)

    assert page.status_code == 302
    assert page["Location"].startswith("/admin/login/")


def test_the_user_list_links_to_the_review_for_a_superuser() -> None:
    root = _person("root@slotpay.example", superuser=True)

    page = _signed_in(root).get("/admin/accounts/user/")

    assert f'href="{PAGE}"'.encode() in page.content


def test_the_over_privileged_and_the_inactive_are_flagged() -> None:
    now = timezone.now()
    auditor = _person("audrey@slotpay.example", "Auditor")
    support = _person("sue@slotpay.example", "Support")
    User.objects.filter(pk=support.pk).update(last_login=now - timedelta(days=3))
    # Planted: Support with a refund right of its own.
    direct = _person("dan@slotpay.example", "Support")
    direct.user_permissions.add(
        Permission.objects.get(content_type__app_label="payments", codename="issue_refund")
    )
    User.objects.filter(pk=direct.pk).update(last_login=now - timedelta(days=1))
    # Planted: Finance, last seen four months ago; and one who never signed in.
    away = _person("fay@slotpay.example", "Finance")
    User.objects.filter(pk=away.pk).update(last_login=now - timedelta(days=120))
    never = _person("nora@slotpay.example", "Privacy")
    two_roles = _person("tom@slotpay.example", "Finance", "Privacy")
    User.objects.filter(pk=two_roles.pk).update(last_login=now)
    root = _person("root@slotpay.example", superuser=True)
    User.objects.filter(pk=root.pk).update(last_login=now)
    # In a staff group without is_staff: the group's rights count all the same.
    hidden = _person("gil@slotpay.example", "Finance", staff=False)
    User.objects.filter(pk=hidden.pk).update(last_login=now)
    TOTPDevice.objects.create(user=support, name="Phone", confirmed=True)
    TOTPDevice.objects.create(user=direct, name="Phone", confirmed=False)  # never confirmed
    client = _person("clara@example.com", staff=False)

    browser = _signed_in(auditor)
    page = browser.get(PAGE)

    assert page.status_code == 200
    assert _rows(page) == {
        auditor.pk: ("no", "no"),
        support.pk: ("no", "no"),
        direct.pk: ("no", "yes"),
        away.pk: ("yes", "no"),
        never.pk: ("yes", "no"),
        two_roles.pk: ("no", "yes"),
        root.pk: ("no", "yes"),
        hidden.pk: ("no", "no"),
    }
    assert client.pk not in _rows(page)
    rows = {row.user.pk: row for row, _ in page.context["rows"]}
    assert rows[direct.pk].beyond_roles == ("payments.issue_refund",)
    assert rows[direct.pk].direct == ("payments.issue_refund",)
    assert rows[direct.pk].over_privileged == ("1 permission(s) given directly",)
    assert rows[two_roles.pk].over_privileged == ("2 staff roles: Finance, Privacy",)
    assert rows[root.pk].over_privileged == ("superuser: every permission",)
    assert rows[support.pk].totp_enrolled
    assert not rows[direct.pk].totp_enrolled
    # Support's stated set, nothing more.
    assert rows[support.pk].permissions == set(STAFF_GROUP_PERMISSIONS["Support"])
    html = page.content.decode()
    # Emails masked as the admin's lists mask them; names shown; times zoned.
    assert "sue@slotpay.example" not in html
    assert "s***@s***.example" in html
    assert "Sue" in html
    assert f"{timezone.localtime(now - timedelta(days=120)):%Y-%m-%d %H:%M} UTC" in html
    assert "<strong>2</strong> inactive" in html
    assert "<strong>3</strong> over-privileged" in html
    # Names in clear are personal data: the view is an access entry.
    viewed = AuditEntry.objects.get(action="accounts.access_review.viewed")
    assert (viewed.category, viewed.actor_id) == ("access", str(auditor.pk))
    assert viewed.data["staff"] == 8


def test_a_group_widened_past_its_role_makes_its_members_over_privileged() -> None:
    auditor = _person("audrey@slotpay.example", "Auditor")
    support = _person("sue@slotpay.example", "Support")
    Group.objects.get(name="Support").permissions.add(
        Permission.objects.get(content_type__app_label="payments", codename="approve_refund")
    )

    rows = {row.user.pk: row for row in access_review.staff_access(actor=auditor)}

    assert rows[support.pk].beyond_roles == ("payments.approve_refund",)
    assert rows[support.pk].over_privileged == ("1 permission(s) beyond the roles' stated sets",)


def test_signing_off_needs_a_step_up_and_a_note_and_is_audited_with_the_counts() -> None:
    auditor = _person("audrey@slotpay.example", "Auditor")
    direct = _person("dan@slotpay.example", "Support")
    direct.user_permissions.add(
        Permission.objects.get(content_type__app_label="payments", codename="issue_refund")
    )
    User.objects.filter(pk=direct.pk).update(last_login=timezone.now())
    never = _person("nora@slotpay.example", "Privacy")
    browser = _signed_in(auditor)
    reviewed = _fingerprint(browser.get(PAGE))

    not_stepped_up = browser.post(PAGE, {"note": NOTE, "reviewed": reviewed})
    assert not_stepped_up.status_code == 302
    assert not_stepped_up["Location"].startswith("/accounts/step-up/?next=")
    assert _sign_offs() == []

    step_up(browser)
    no_note = browser.post(PAGE, {"note": "ok", "reviewed": reviewed})
    assert no_note.status_code == 200
    assert b"Say what you reviewed" in no_note.content
    assert _sign_offs() == []

    signed = browser.post(PAGE, {"note": NOTE, "reviewed": reviewed})

    assert (signed.status_code, signed["Location"]) == (302, PAGE)
    [entry] = _sign_offs()
    assert (entry.category, entry.actor_type, entry.actor_id) == (
        "security",
        "user",
        str(auditor.pk),
    )
    assert entry.data == {
        "staff": 3,
        "inactive": 1,
        "over_privileged": 1,
        "reviewed": [auditor.pk, direct.pk, never.pk],
        "inactive_ids": [never.pk],
        "over_privileged_ids": [direct.pk],
        "without_totp": 3,
        "inactive_days": 90,
        "fingerprint": reviewed,
    }
    assert json.loads(entry.personal_data)["values"] == {"note": NOTE}
    assert NOTE not in json.dumps(entry.data)
    assert verify_chain().ok
    # The same form posted again (a double click, a replay): the sign-off stands once.
    again = browser.post(PAGE, {"note": NOTE, "reviewed": reviewed})
    assert again.status_code == 302
    assert _sign_offs() == [entry]
    page = browser.get(PAGE)
    html = page.content.decode()
    assert f"Last signed off {timezone.localtime(entry.created_at):%Y-%m-%d %H:%M} UTC" in html
    assert f"by Audrey (user {auditor.pk})" in html
    due = timezone.localtime(entry.created_at + timedelta(days=90))
    assert f"Next review due {due:%Y-%m-%d %H:%M} UTC." in html


def test_a_review_whose_rights_changed_after_it_was_loaded_is_not_signed() -> None:
    auditor = _person("audrey@slotpay.example", "Auditor")
    support = _person("sue@slotpay.example", "Support")
    browser = _signed_in(auditor)
    reviewed = _fingerprint(browser.get(PAGE))
    step_up(browser)
    # A superuser grants a right between the page and the signature.
    support.groups.add(Group.objects.get(name="Finance"))

    refused = browser.post(PAGE, {"note": NOTE, "reviewed": reviewed}, follow=True)

    assert b"Staff rights changed since the review was loaded" in refused.content
    assert _sign_offs() == []
    # The page shown again carries the new state: signing that is accepted.
    again = browser.post(PAGE, {"note": NOTE, "reviewed": _fingerprint(refused)})
    assert again.status_code == 302
    [entry] = _sign_offs()
    assert entry.data["over_privileged_ids"] == [support.pk]


def _due_alerts() -> list[Alert]:
    return list(Alert.objects.filter(key=access_review.DUE_ALERT).order_by("pk"))


def _alert_emails() -> list[dict]:
    payloads = [
        json.loads(message.payload)
        for message in OutboxMessage.objects.filter(task="core.tasks.send_mail").order_by("pk")
    ]
    return [p for p in payloads if access_review.DUE_ALERT in p["args"][2]]


def test_the_reminder_is_raised_when_due_once_and_cleared_by_the_sign_off() -> None:
    auditor = _person("audrey@slotpay.example", "Auditor")
    _person("fay@slotpay.example", "Finance")

    # Never signed off: due. Raised once, however often beat asks.
    assert remind_access_review() is True
    assert remind_access_review() is False
    [alert] = _due_alerts()
    assert (alert.is_open, alert.group, alert.times_seen) == (True, "Auditor", 2)
    assert "never been signed off" in alert.summary
    [email] = _alert_emails()
    assert email["args"][3] == [auditor.email]  # the Auditor group: no ALERT_EMAILS here

    browser = _signed_in(auditor)
    reviewed = _fingerprint(browser.get(PAGE))
    step_up(browser)
    assert browser.post(PAGE, {"note": NOTE, "reviewed": reviewed}).status_code == 302

    alert.refresh_from_db()
    assert alert.cleared_at is not None
    assert remind_access_review() is False  # signed off: nothing to raise
    assert len(_due_alerts()) == 1

    # A quarter later it is due again: a new incident, raised once.
    with time_machine.travel(timezone.now() + timedelta(days=89), tick=False):
        assert remind_access_review() is False
    with time_machine.travel(timezone.now() + timedelta(days=91), tick=False):
        assert remind_access_review() is True
        assert remind_access_review() is False
        assert access_review.is_due()
    first, second = _due_alerts()
    assert second.is_open
    assert "is due: last signed off" in second.summary
    assert not first.is_open


def test_the_reminder_clears_an_alert_left_open_once_a_review_is_signed() -> None:
    auditor = _person("audrey@slotpay.example", "Auditor")
    assert remind_access_review() is True
    # Signed off through the service (the alert then closes with it)...
    rows = access_review.staff_access(actor=auditor)
    access_review.access_review_sign_off(
        actor=auditor, note=NOTE, reviewed=access_review.fingerprint(rows)
    )
    assert [alert.is_open for alert in _due_alerts()] == [False]
    # ...and the reminder finds nothing due.
    assert access_review.is_due() is False
    assert remind_access_review() is False
    assert [alert.is_open for alert in _due_alerts()] == [False]


def test_the_review_costs_the_same_queries_however_many_staff() -> None:
    auditor = _person("audrey@slotpay.example", "Auditor")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            access_review.staff_access(actor=auditor)
        return len(captured)

    def staff(n: int) -> None:
        member = _person(f"m{n}@slotpay.example", "Support", "Finance")
        TOTPDevice.objects.create(user=member, name="Phone", confirmed=True)
        member.user_permissions.add(
            Permission.objects.get(content_type__app_label="payments", codename="issue_refund")
        )

    staff(0)
    queries()  # the reviewer's own permissions, read once and kept on the user
    few = queries()
    for n in range(1, 7):
        staff(n)
    assert queries() == few
