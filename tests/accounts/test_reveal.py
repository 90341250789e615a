"""Personal data in the back-office: masked in lists for everyone; in clear on a detail
page only for staff allowed to (each view audited); revealed by Support only with a
reason, audited as an ``access`` entry naming who, whose, which fields and why."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from accounts.models import User
from accounts.reveal import initials, mask
from audit.models import AuditEntry
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.accounts.reveal_site")]

CLIENT_EMAIL = "clara.client@example.org"


def _staff(email: str, *codenames: str) -> Client:
    user = User.objects.create_user(email=email, password=PASSWORD, name="Staff", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    browser = Client()
    browser.force_login(user)
    return browser


@pytest.fixture
def clara() -> User:
    return User.objects.create_user(email=CLIENT_EMAIL, password=PASSWORD, name="Clara Client")


def _accesses() -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(category="access").order_by("sequence"))


def test_masks() -> None:
    assert mask("email", CLIENT_EMAIL) == "c***@e***.org"
    assert initials("Clara  Client") == "C. C."
    assert mask("name", "") == ""


def test_support_sees_masked_data_and_no_audit_for_it(clara: User) -> None:
    support = _staff("support@slotpay.example", "view_user", "reveal_personal_data")

    listing = support.get("/admin/accounts/user/")
    detail = support.get(f"/admin/accounts/user/{clara.pk}/change/")

    for page in (listing, detail):
        assert page.status_code == 200
        assert CLIENT_EMAIL.encode() not in page.content
        assert b"Clara Client" not in page.content
    assert b"c***@e***.org" in listing.content
    assert b'href="reveal/"' in detail.content
    assert detail.content.count(b"c***@e***.org") == 1  # each field once
    assert _accesses() == []


def test_a_reveal_needs_a_reason_and_is_audited(clara: User) -> None:
    support = _staff("support@slotpay.example", "view_user", "reveal_personal_data")
    url = f"/admin/accounts/user/{clara.pk}/change/reveal/"

    form = support.get(url)
    assert form.status_code == 200
    assert CLIENT_EMAIL.encode() not in form.content
    for bad in ("", "because", "x\x00" * 10, "y" * 501, "\U0001f600" * 10, "١٢٣٤٥٦٧٨٩٠١"):
        refused = support.post(url, {"reason": bad})
        assert CLIENT_EMAIL.encode() not in refused.content
    assert _accesses() == []

    shown = support.post(url, {"reason": "Ticket 4711: client asks which email we hold"})

    assert CLIENT_EMAIL.encode() in shown.content
    assert b"Clara Client" in shown.content
    assert "no-store" in shown["Cache-Control"]
    [entry] = _accesses()
    supporter = User.objects.get(email_index=User.objects.get(pk=entry.actor_id).email_index)
    assert supporter.email == "support@slotpay.example"
    assert (entry.target_type, entry.target_id) == ("accounts.user", str(clara.pk))
    assert entry.data["fields"] == ["email", "name"]
    assert entry.data["via"] == "admin.reveal"
    assert entry.data["reason"] == "Ticket 4711: client asks which email we hold"


def test_staff_without_the_reveal_permission_cannot_reveal(clara: User) -> None:
    viewer = _staff("auditor@slotpay.example", "view_user")

    detail = viewer.get(f"/admin/accounts/user/{clara.pk}/change/")
    answer = viewer.post(
        f"/admin/accounts/user/{clara.pk}/change/reveal/", {"reason": "just curious, really"}
    )

    assert b'href="reveal/"' not in detail.content
    assert answer.status_code == 403
    assert CLIENT_EMAIL.encode() not in answer.content
    assert _accesses() == []


def test_privacy_sees_a_detail_page_in_clear_and_each_view_is_audited(clara: User) -> None:
    privacy = _staff("privacy@slotpay.example", "view_user", "change_user", "view_personal_data")

    listing = privacy.get("/admin/accounts/user/")
    detail = privacy.get(f"/admin/accounts/user/{clara.pk}/change/")

    assert CLIENT_EMAIL.encode() not in listing.content  # lists stay masked
    assert CLIENT_EMAIL.encode() in detail.content
    [entry] = _accesses()
    assert (entry.data["via"], entry.target_id) == ("admin.detail", str(clara.pk))


def test_reveal_of_nothing_is_a_404() -> None:
    support = _staff("support@slotpay.example", "view_user", "reveal_personal_data")
    assert support.get("/admin/accounts/user/999999/change/reveal/").status_code == 404
