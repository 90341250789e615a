"""Builders' members join by invitation: from staff with the permission or from an
owner of the builder; the link works once, for 7 days, for the invited address only;
the invitee signs up (verified by the link) or signs in, and joins. Audited."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group, Permission
from django.core import mail
from django.core.exceptions import PermissionDenied
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


def test_support_and_staff_with_the_permission_cannot_invite(
    studio, django_capture_on_commit_callbacks
) -> None:
    """Only superusers (and the builder's owners, on the site) invite: a Support member,
    or staff given ``add_buildermembership`` by hand, could make themselves an owner."""
    clerk = User.objects.create_user(
        email="clerk@slotpay.example", password=PASSWORD, is_staff=True
    )
    clerk.groups.add(Group.objects.get(name="Support"))
    clerk.user_permissions.add(Permission.objects.get(codename="add_buildermembership"))
    admin = Client()
    admin.force_login(clerk)
    step_up(admin)
    url = f"/admin/accounts/builder/{studio.pk}/invite/"
    assert admin.get(url).status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin.post(url, {"email": "clerk@slotpay.example", "role": "owner"})
    assert answer.status_code == 403
    assert mail.outbox == []


def test_a_superuser_invites_from_the_back_office_after_stepping_up(
    staff, studio, django_capture_on_commit_callbacks
) -> None:
    admin = Client()
    admin.force_login(staff)
    url = f"/admin/accounts/builder/{studio.pk}/invite/"
    page = admin.get(url)
    assert page.status_code == 302
    assert page["Location"].startswith("/accounts/step-up/")
    with django_capture_on_commit_callbacks(execute=True):
        refused = admin.post(url, {"email": "boss@example.org", "role": "owner"})
    assert refused["Location"].startswith("/accounts/step-up/")
    assert mail.outbox == []
    assert not AuditEntry.objects.filter(action="accounts.invitation.sent").exists()

    step_up(admin)
    assert admin.get(url).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin.post(url, {"email": "boss@example.org", "role": "owner"})
    assert answer.status_code == 302
    secret = last_secret()
    sign_up_with(secret, django_capture_on_commit_callbacks, "boss@example.org")
    boss = User.objects.get_by_email("boss@example.org")
    assert BuilderMembership.objects.get(user=boss).role == "owner"


def test_a_superuser_cannot_invite_from_the_site_without_stepping_up(
    staff, studio, django_capture_on_commit_callbacks
) -> None:
    """The account page's invitation form is the owners': a superuser's invitation goes
    through the admin, stepped up."""
    browser = Client()
    browser.force_login(staff)
    with django_capture_on_commit_callbacks(execute=True):
        answer = browser.post(
            f"/accounts/builders/{studio.slug}/invite/",
            {"email": "boss@example.org", "role": "owner"},
        )
    assert answer.status_code == 404
    assert mail.outbox == []


def test_a_staff_address_cannot_be_invited(
    owner, staff, studio, django_capture_on_commit_callbacks
) -> None:
    clerk = User.objects.create_user(
        email="clerk@slotpay.example", password=PASSWORD, is_staff=True
    )
    browser = Client()
    browser.force_login(owner)
    with django_capture_on_commit_callbacks(execute=True):
        answer = browser.post(
            f"/accounts/builders/{studio.slug}/invite/",
            {"email": "Clerk@slotpay.example", "role": "member"},
        )
    assert answer["Location"] == "/accounts/"
    page = browser.get("/accounts/").content.decode()
    assert "This address belongs to a Slotpay staff account" in page
    # A superuser, stepped up, cannot invite a staff address either (their own included).
    admin = Client()
    admin.force_login(staff)
    step_up(admin)
    url = f"/admin/accounts/builder/{studio.pk}/invite/"
    for address in ("staff@slotpay.example", "clerk@slotpay.example"):
        with django_capture_on_commit_callbacks(execute=True):
            form = admin.post(url, {"email": address, "role": "owner"})
        assert form.status_code == 200
        assert "belongs to a Slotpay staff account" in form.content.decode()
    assert mail.outbox == []
    assert not AuditEntry.objects.filter(action="accounts.invitation.sent").exists()
    refusals = AuditEntry.objects.filter(action="accounts.invitation.refused")
    assert refusals.count() == 3
    assert {entry.data["reason"] for entry in refusals} == {"staff_address"}
    assert all("slotpay.example" not in str(entry.data) for entry in refusals)
    assert not BuilderMembership.objects.filter(user__in=[clerk, staff]).exists()


def test_a_staff_account_cannot_accept_an_invitation(
    owner, studio, stranger, django_capture_on_commit_callbacks
) -> None:
    """The invitee became staff after the invitation was sent: refused, audited, the
    link left unspent (a non-staff account with that address could still use it)."""
    invite_as_owner(owner, studio, django_capture_on_commit_callbacks, email="stranger@example.net")
    secret = last_secret()
    stranger.is_staff = True
    stranger.save()
    browser = Client()
    browser.force_login(stranger)
    page = browser.get(f"/accounts/invitation/{secret}/").content.decode()
    assert "A staff account cannot join a builder" in page
    assert '<button type="submit">Join' not in page
    answer = browser.post(f"/accounts/invitation/{secret}/")
    assert answer.status_code == 200
    assert "A staff account cannot join a builder" in answer.content.decode()
    assert not BuilderMembership.objects.filter(user=stranger).exists()
    refused = AuditEntry.objects.get(action="accounts.invitation.refused")
    assert refused.data == {"reason": "staff_account", "user": stranger.pk}
    assert not AuditEntry.objects.filter(action="accounts.invitation.accepted").exists()
    # The service refuses too, whoever calls it.
    from accounts.signup import InvitationRefused, invitation_accept

    with pytest.raises(InvitationRefused):
        invitation_accept(secret=secret, user=stranger)
    assert not BuilderMembership.objects.filter(user=stranger).exists()


def test_the_invitation_says_what_a_member_may_do(
    owner, staff, studio, django_capture_on_commit_callbacks
) -> None:
    invite_as_owner(owner, studio, django_capture_on_commit_callbacks)
    member = mail.outbox[-1].body
    assert "the names and email addresses of its clients" in member
    assert "cancel a booking before it starts, refunding the client in full" in member
    assert "mark a client who did not come as a no-show" in member
    assert "invite" not in member.split("Accept here")[0].replace("You are invited", "")
    assert "payouts" not in member  # members see no payouts: there is no such page
    admin = Client()
    admin.force_login(staff)
    step_up(admin)
    with django_capture_on_commit_callbacks(execute=True):
        admin.post(
            f"/admin/accounts/builder/{studio.pk}/invite/",
            {"email": "boss@example.org", "role": "owner"},
        )
    boss = mail.outbox[-1].body
    assert "as an owner" in boss
    assert "As an owner you can also invite other people to join" in boss


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


def test_support_is_not_offered_the_invite_link(studio) -> None:
    support = User.objects.create_user(
        email="support@slotpay.example", password=PASSWORD, is_staff=True
    )
    support.groups.add(Group.objects.get(name="Support"))
    browser = Client()
    browser.force_login(support)
    page = browser.get(f"/admin/accounts/builder/{studio.pk}/change/")
    assert page.status_code == 200
    assert "/invite/" not in page.content.decode()


def test_a_staff_account_cannot_be_added_as_a_member_by_hand(staff, studio) -> None:
    colleague = User.objects.create_user(
        email="colleague@slotpay.example", password=PASSWORD, is_staff=True
    )
    admin = Client()
    admin.force_login(staff)
    step_up(admin)
    members = list(studio.memberships.all())
    form = {
        "name": studio.name,
        "slug": studio.slug,
        "time_zone": studio.time_zone,
        "is_active": "on",
        "memberships-TOTAL_FORMS": str(len(members) + 1),
        "memberships-INITIAL_FORMS": str(len(members)),
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
        **{
            field: value
            for n, m in enumerate(members)
            for field, value in {
                f"memberships-{n}-id": str(m.pk),
                f"memberships-{n}-builder": str(studio.pk),
                f"memberships-{n}-user": str(m.user_id),
                f"memberships-{n}-role": m.role,
            }.items()
        },
        f"memberships-{len(members)}-builder": str(studio.pk),
        f"memberships-{len(members)}-user": str(colleague.pk),
        f"memberships-{len(members)}-role": "member",
    }

    answer = admin.post(f"/admin/accounts/builder/{studio.pk}/change/", form)

    assert answer.status_code == 200  # the form again, with the error
    assert "A staff account cannot join a builder" in answer.content.decode()
    assert not BuilderMembership.objects.filter(user=colleague).exists()


def test_a_member_cannot_be_made_staff(owner, studio) -> None:
    owner.is_staff = True
    with pytest.raises(PermissionDenied, match="end its memberships"):
        owner.save()
    owner.refresh_from_db()
    assert not owner.is_staff
