"""The back-office's people pages, as each role sees them (the real admin site)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from accounts.models import User
from audit.models import AuditEntry
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

CLIENT_EMAIL = "clara.client@example.org"


def _member(group: str) -> tuple[User, Client]:
    user = User.objects.create_user(
        email=f"{group.lower()}@slotpay.example",
        password=PASSWORD,
        name=f"Sam {group}",
        is_staff=True,
    )
    user.groups.add(Group.objects.get(name=group))
    browser = Client()
    browser.force_login(user)
    return user, browser


@pytest.fixture
def clara() -> User:
    return User.objects.create_user(email=CLIENT_EMAIL, password=PASSWORD, name="Clara Client")


def test_support_sees_people_masked_and_reveals_with_a_reason(clara: User) -> None:
    support, browser = _member("Support")

    listing = browser.get("/admin/accounts/user/")
    found = browser.get("/admin/accounts/user/", {"q": CLIENT_EMAIL})
    detail = browser.get(f"/admin/accounts/user/{clara.pk}/change/")

    for page in (listing, detail):
        assert page.status_code == 200
        assert CLIENT_EMAIL.encode() not in page.content
        assert b"Clara Client" not in page.content
    # Found by the exact address typed (echoed in the search box only), shown masked.
    assert found.content.count(CLIENT_EMAIL.encode()) == 1
    assert b"c***@e***.org" in found.content
    assert b"C. C." in detail.content
    shown = browser.post(
        f"/admin/accounts/user/{clara.pk}/change/reveal/", {"reason": "Ticket 12: wrong email"}
    )
    assert CLIENT_EMAIL.encode() in shown.content
    entry = AuditEntry.objects.get(action="accounts.personal_data.accessed")
    assert (entry.actor_id, entry.target_id) == (str(support.pk), str(clara.pk))


def test_privacy_sees_a_client_in_clear_audited_but_a_staff_member_masked(clara: User) -> None:
    _, browser = _member("Privacy")
    colleague, _ = _member("Finance")

    client_page = browser.get(f"/admin/accounts/user/{clara.pk}/change/")
    staff_page = browser.get(f"/admin/accounts/user/{colleague.pk}/change/")

    assert CLIENT_EMAIL.encode() in client_page.content
    assert b"finance@slotpay.example" not in staff_page.content
    assert b"f***@s***.example" in staff_page.content
    viewed = AuditEntry.objects.filter(action="accounts.personal_data.accessed")
    assert list(viewed.values_list("target_id", flat=True)) == [str(clara.pk)]
