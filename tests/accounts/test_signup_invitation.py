"""Builders' members join by invitation: from staff with the permission or from an
owner of the builder; the link works once, for 7 days, for the invited address only;
the invitee signs up (verified by the link) or signs in, and joins. Audited."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts.models import Builder, BuilderMembership, User
from audit.models import AuditEntry
from tests.conftest import PASSWORD, step_up

pytestmark = pytest.mark.django_db

LINK = re.compile(r"/accounts/invitation/([A-Za-z0-9_-]+)/")
GOOD = "a long and unusual passphrase 7"  # pragma: allowlist secret


@pytest.fixture
def studio(owner) -> Builder:
    return owner.builders.get()


def invite_as_owner(owner, studio, capture, email="invitee@example.org", role="member"):
    browser = Client()
    browser.force_login(owner)
    with capture(execute=True):
        return browser.post(
            f"/accounts/builders/{studio.slug}/invite/", {"email": email, "role": role}
        )


def last_secret() -> str:
    return LINK.findall(mail.outbox[-1].body)[-1]


def sign_up_with(secret: str, capture, email: str = "invitee@example.org"):
    browser = Client()
    data = {"email": email, "name": "Ivy", "password1": GOOD, "password2": GOOD}
    with capture(execute=True):
        answer = browser.post(f"/accounts/invitation/{secret}/", data)
    return browser, answer


def test_an_owner_invites_and_the_invitee_signs_up_verified_and_joins(
    owner, studio, django_capture_on_commit_callbacks
) -> None:
    answer = invite_as_owner(owner, studio, django_capture_on_commit_callbacks)
    assert answer["Location"] == "/accounts/"
    [email] = mail.outbox
    assert email.to == ["invitee@example.org"]
    assert "Olive's Studio" in email.subject
    sent = AuditEntry.objects.get(action="accounts.invitation.sent")
    assert sent.data == {"role": "member"}
    assert "invitee" not in str(sent.data)

    secret = last_secret()
    page = Client().get(f"/accounts/invitation/{secret}/").content.decode()
    assert "Join Olive&#x27;s Studio" in page
    browser, joined = sign_up_with(secret, django_capture_on_commit_callbacks)
    assert joined.status_code == 302
    invitee = User.objects.get_by_email("invitee@example.org")
    assert invitee.email_verified_at is not None  # the link proved the address
    membership = BuilderMembership.objects.get(user=invitee)
    assert (membership.builder, membership.role) == (studio, "member")
    assert browser.get("/accounts/").status_code == 200  # signed in
    assert AuditEntry.objects.filter(action="accounts.invitation.accepted").count() == 1
    # Once only.
    _, again = sign_up_with(secret, django_capture_on_commit_callbacks, "other@example.org")
    assert again.status_code == 410


def test_only_the_invited_address_may_use_the_link(
    owner, studio, django_capture_on_commit_callbacks
) -> None:
    invite_as_owner(owner, studio, django_capture_on_commit_callbacks)
    _, refused = sign_up_with(last_secret(), django_capture_on_commit_callbacks, "me@example.org")
    assert "Use the address the invitation was sent to." in refused.content.decode()
    assert not User.objects.filter(email_index__isnull=False).exclude(pk=owner.pk).exists()


def test_an_existing_account_signs_in_and_joins(
    owner, studio, stranger, django_capture_on_commit_callbacks
) -> None:
    invite_as_owner(owner, studio, django_capture_on_commit_callbacks, email="Stranger@example.net")
    secret = last_secret()
    browser = Client()
    browser.force_login(stranger)
    page = browser.get(f"/accounts/invitation/{secret}/").content.decode()
    assert '<button type="submit">Join Olive' in page
    joined = browser.post(f"/accounts/invitation/{secret}/")
    assert joined.status_code == 302
    assert BuilderMembership.objects.filter(user=stranger, builder=studio).exists()


def test_another_account_cannot_use_someone_elses_invitation(
    owner, studio, stranger, django_capture_on_commit_callbacks
) -> None:
    invite_as_owner(owner, studio, django_capture_on_commit_callbacks)
    secret = last_secret()
    browser = Client()
    browser.force_login(stranger)
    page = browser.post(f"/accounts/invitation/{secret}/").content.decode()
    assert "sent to another email address" in page
    assert not BuilderMembership.objects.filter(user=stranger).exists()


def test_the_invitation_expires_after_7_days(
    owner, studio, django_capture_on_commit_callbacks
) -> None:
    invite_as_owner(owner, studio, django_capture_on_commit_callbacks)
    secret = last_secret()
    with time_machine.travel(timezone.now() + timedelta(days=7, seconds=1)):
        assert Client().get(f"/accounts/invitation/{secret}/").status_code == 410


def test_a_member_who_is_not_an_owner_cannot_invite(
    studio, stranger, django_capture_on_commit_callbacks
) -> None:
    BuilderMembership.objects.create(builder=studio, user=stranger, role="member")
    browser = Client()
    browser.force_login(stranger)
    with django_capture_on_commit_callbacks(execute=True):
        answer = browser.post(
            f"/accounts/builders/{studio.slug}/invite/", {"email": "x@example.org"}
        )
    assert answer.status_code == 404
    assert mail.outbox == []


def test_an_owner_cannot_invite_an_owner(owner, studio, django_capture_on_commit_callbacks):
    invite_as_owner(owner, studio, django_capture_on_commit_callbacks, role="owner")
    assert mail.outbox == []
    assert not AuditEntry.objects.filter(action="accounts.invitation.sent").exists()


def test_staff_with_the_permission_invite_from_the_back_office(
    studio, django_capture_on_commit_callbacks
) -> None:
    clerk = User.objects.create_user(
        email="clerk@slotpay.example", password=PASSWORD, is_staff=True
    )
    admin = Client()
    admin.force_login(clerk)
    url = f"/admin/accounts/builder/{studio.pk}/invite/"
    assert admin.get(url).status_code == 403
    clerk.user_permissions.add(Permission.objects.get(codename="add_buildermembership"))
    clerk.user_permissions.add(Permission.objects.get(codename="view_builder"))
    assert admin.get(url).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin.post(url, {"email": "boss@example.org", "role": "owner"})
    assert answer.status_code == 302
    secret = last_secret()
    sign_up_with(secret, django_capture_on_commit_callbacks, "boss@example.org")
    boss = User.objects.get_by_email("boss@example.org")
    assert BuilderMembership.objects.get(user=boss).role == "owner"


def test_the_account_page_offers_owners_the_invitation_form(owner, stranger) -> None:
    browser = Client()
    browser.force_login(owner)
    assert "Invite a member to Olive" in browser.get("/accounts/").content.decode()
    browser.force_login(stranger)
    assert "Invite a member" not in browser.get("/accounts/").content.decode()


def test_a_superuser_sees_the_invite_link_on_the_builder(staff, studio) -> None:
    admin = Client()
    admin.force_login(staff)
    step_up(admin)
    page = admin.get(f"/admin/accounts/builder/{studio.pk}/change/").content.decode()
    assert f"/admin/accounts/builder/{studio.pk}/invite/" in page
