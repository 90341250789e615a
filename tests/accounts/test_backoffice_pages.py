"""The back-office's own chrome: who is signed in, and a 403 that keeps staff in it."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from accounts.models import User
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def support() -> Client:
    user = User.objects.create_user(
        email="sue@slotpay.example", password=PASSWORD, name="Sue Support", is_staff=True
    )
    user.groups.add(Group.objects.get(name="Support"))
    browser = Client()
    browser.force_login(user)
    return browser


def test_the_admin_greets_the_person_signed_in_by_name_and_role(support: Client) -> None:
    page = support.get("/admin/")

    assert b"Signed in as <strong>Sue Support</strong> (Support)." in page.content
    assert b"Welcome," not in page.content
    assert b'href="/accounts/two-factor/"' in page.content


def test_a_403_in_the_admin_stays_in_the_admin(support: Client) -> None:
    page = support.get("/admin/auth/group/")

    assert page.status_code == 403
    assert b"Back to the back-office" in page.content
    assert b"(Support)" in page.content
    assert b"Nothing was changed." in page.content
