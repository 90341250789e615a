"""Nobody but a superuser changes rights, a staff account's email, or a password.

Each attempt by anyone else, through the admin's forms or a POST made by hand, is
refused (403), changes nothing, and is audited with the person who really tried.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.test import Client

from accounts.models import User
from audit.models import AuditEntry
from audit.services import verify_chain
from core.encryption import blind_indexes
from core.http import current_user
from tests.conftest import PASSWORD, step_up

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "an entirely new passphrase 42"  # pragma: allowlist secret
USABLE = {"usable_password": "true"}  # pragma: allowlist secret


def _staff(email: str, group: str) -> User:
    user = User.objects.create_user(email=email, password=PASSWORD, name=group, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def superuser() -> User:
    return User.objects.create_superuser(email="root@slotpay.example", password=PASSWORD)


@pytest.fixture
def privacy() -> User:
    # With "change user", as Privacy once had and as any group a superuser may give it:
    # the rights below hold whatever a group's permissions say.
    user = _staff("privacy@slotpay.example", "Privacy")
    user.user_permissions.add(Permission.objects.get(codename="change_user"))
    return user


@pytest.fixture
def client_user() -> User:
    return User.objects.create_user(email="clara@client.example", password=PASSWORD, name="Clara")


def _browser(user: User) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


def _change_form(user: User) -> dict[str, str]:
    """What the admin's change form of ``user`` posts, fields as shown to a superuser."""
    return {
        "email": user.email,
        "name": user.name,
        "time_zone": user.time_zone,
        "is_active": "on" if user.is_active else "",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
    }


def _refusals() -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action="accounts.user.change_refused"))


def test_privacy_cannot_make_itself_superuser(privacy):
    browser = _browser(privacy)

    response = browser.post(
        f"/admin/accounts/user/{privacy.pk}/change/",
        {**_change_form(privacy), "is_superuser": "on", "is_staff": "on"},
    )

    assert response.status_code == 403
    privacy.refresh_from_db()
    assert not privacy.is_superuser
    [refused] = _refusals()
    assert refused.actor_id == str(privacy.pk)
    assert refused.category == "security"
    assert (refused.target_type, refused.target_id) == ("accounts.user", str(privacy.pk))
    assert set(refused.data["fields"]) >= {"is_superuser", "is_staff"}
    assert verify_chain().ok


def test_privacy_cannot_join_a_group_by_a_hand_made_post(privacy):
    finance = Group.objects.get(name="Finance")

    # Privacy's own change form shows nothing editable (a staff account): only a group.
    response = _browser(privacy).post(
        f"/admin/accounts/user/{privacy.pk}/change/", {"groups": [str(finance.pk)]}
    )

    assert response.status_code == 403
    assert not privacy.groups.filter(name="Finance").exists()
    assert _refusals()[0].data["fields"] == ["groups"]


def test_privacy_cannot_set_the_superusers_password(privacy, superuser):
    browser = _browser(privacy)
    page = browser.get(f"/admin/accounts/user/{superuser.pk}/password/")
    response = browser.post(
        f"/admin/accounts/user/{superuser.pk}/password/",
        {
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
            "usable_password": "true",  # pragma: allowlist secret
        },
    )

    assert page.status_code == 403
    assert response.status_code == 403
    superuser.refresh_from_db()
    assert superuser.check_password(PASSWORD)
    assert not AuditEntry.objects.filter(action="accounts.user.password_changed").exists()
    assert [(e.actor_id, e.target_id) for e in _refusals()] == [
        (str(privacy.pk), str(superuser.pk)),
        (str(privacy.pk), str(superuser.pk)),
    ]


def test_privacy_cannot_change_a_staff_members_email(privacy, superuser):
    response = _browser(privacy).post(
        f"/admin/accounts/user/{superuser.pk}/change/",
        {**_change_form(superuser), "email": "attacker@evil.example"},
    )

    assert response.status_code == 403
    assert User.objects.get(pk=superuser.pk).email == "root@slotpay.example"


def test_privacy_sees_no_rights_fields_and_a_staff_email_read_only(privacy, superuser, client_user):
    browser = _browser(privacy)

    own = browser.get(f"/admin/accounts/user/{privacy.pk}/change/")
    staff_page = browser.get(f"/admin/accounts/user/{superuser.pk}/change/")
    client_page = browser.get(f"/admin/accounts/user/{client_user.pk}/change/")

    for page in (own, staff_page, client_page):
        assert page.status_code == 200
        shown = {
            field for fieldset in page.context["adminform"] for line in fieldset for field in line
        }
        names = {
            field.field["name"] if isinstance(field.field, dict) else field.field.name
            for field in shown
        }
        assert not {"is_superuser", "is_staff", "groups", "user_permissions", "password"} & names
        assert b"password/" not in page.content
    assert "email" not in staff_page.context["adminform"].form.fields
    assert {"email", "name"} <= set(client_page.context["adminform"].form.fields)
    # Whether a client may sign in at all is a right too: a superuser's.
    assert "is_active" not in client_page.context["adminform"].form.fields


def test_a_people_clerk_still_corrects_a_clients_name_and_email(privacy, client_user):
    form = {**_change_form(client_user), "name": "Clara Client", "email": "clara@new.example"}
    del form["is_active"]  # not on a non-superuser's form

    response = _browser(privacy).post(f"/admin/accounts/user/{client_user.pk}/change/", form)

    assert response.status_code == 302, response.content[:2000]
    client_user.refresh_from_db()
    assert (client_user.name, client_user.email) == ("Clara Client", "clara@new.example")
    assert not _refusals()
    # The correction is in our trail, by Privacy, the addresses sealed.
    entry = AuditEntry.objects.get(action="accounts.user.changed")
    assert (entry.actor_id, entry.target_id) == (str(privacy.pk), str(client_user.pk))
    assert entry.data == {"fields": ["email", "name"], "via": "admin"}
    assert "clara@new.example" not in str(entry.data)
    assert json.loads(entry.personal_data)["values"]["email"] == {
        "from": "clara@client.example",
        "to": "clara@new.example",
    }


def test_privacy_cannot_change_a_staff_members_time_zone(privacy, superuser):
    response = _browser(privacy).post(
        f"/admin/accounts/user/{superuser.pk}/change/", {"time_zone": "Asia/Tokyo"}
    )

    assert response.status_code == 403
    assert User.objects.get(pk=superuser.pk).time_zone == ""


def test_privacy_cannot_delete_a_staff_account(privacy, superuser):
    privacy.user_permissions.add(Permission.objects.get(codename="delete_user"))

    response = _browser(privacy).post(
        f"/admin/accounts/user/{superuser.pk}/delete/", {"post": "yes"}
    )

    assert response.status_code == 403
    assert User.objects.filter(pk=superuser.pk).exists()


def test_staff_cannot_change_a_groups_permissions(privacy):
    privacy.user_permissions.add(Permission.objects.get(codename="change_group"))
    privacy = User.objects.get(pk=privacy.pk)  # drop the permission cache
    group = Group.objects.get(name="Privacy")

    response = _browser(privacy).post(
        f"/admin/auth/group/{group.pk}/change/",
        {"name": "Privacy", "permissions": [str(p.pk) for p in Permission.objects.all()]},
    )

    assert response.status_code == 403
    assert group.permissions.count() < Permission.objects.count()


def test_a_superuser_grants_and_removes_rights_audited_as_themselves(superuser, client_user):
    finance = Group.objects.get(name="Finance")
    form = {**_change_form(client_user), "is_staff": "on", "groups": [str(finance.pk)]}
    browser = _browser(superuser)
    step_up(browser)

    granted = browser.post(f"/admin/accounts/user/{client_user.pk}/change/", form)
    removed = browser.post(
        f"/admin/accounts/user/{client_user.pk}/change/", _change_form(client_user)
    )

    assert granted.status_code == removed.status_code == 302
    client_user.refresh_from_db()
    assert not client_user.is_staff
    assert not client_user.groups.exists()
    entries = AuditEntry.objects.filter(
        action="accounts.user.rights_changed", target_id=str(client_user.pk)
    ).order_by("sequence")
    assert [e.actor_id for e in entries] == [str(superuser.pk)] * entries.count()
    changes = [e.data for e in entries]
    assert {"changes": {"is_staff": {"from": False, "to": True}}} in changes
    assert {"relation": "accounts.user_groups", "add": ["Finance"]} in changes
    assert {"changes": {"is_staff": {"from": True, "to": False}}} in changes
    assert {"relation": "accounts.user_groups", "remove": ["Finance"]} in changes


def test_a_password_set_by_a_superuser_names_the_superuser(superuser, client_user):
    browser = _browser(superuser)
    step_up(browser)
    response = browser.post(
        f"/admin/accounts/user/{client_user.pk}/password/",
        {
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
            "usable_password": "true",  # pragma: allowlist secret
        },
    )

    assert response.status_code == 302
    entry = AuditEntry.objects.get(action="accounts.user.password_changed")
    assert (entry.actor_id, entry.target_id) == (str(superuser.pk), str(client_user.pk))


def test_the_model_refuses_rights_changed_during_a_non_superusers_request(privacy, client_user):
    """Whatever view a future change adds, a non-superuser's request cannot grant rights."""
    finance, own_group = Group.objects.get(name="Finance"), Group.objects.get(name="Privacy")
    token = current_user.set(privacy)
    try:
        client_user.is_superuser = True
        with pytest.raises(PermissionDenied), transaction.atomic():
            client_user.save()
        with pytest.raises(PermissionDenied), transaction.atomic():
            client_user.groups.add(finance)
        with pytest.raises(PermissionDenied), transaction.atomic():
            own_group.user_set.add(client_user)
    finally:
        current_user.reset(token)

    client_user.refresh_from_db()
    assert not client_user.is_superuser
    assert not client_user.groups.exists()


@pytest.mark.parametrize("change", ["staff", "superuser", "group", "password"])
def test_a_superuser_must_step_up_to_change_rights(superuser, client_user, change):
    """Granting rights (or setting a password) with a session alone, say a stolen
    cookie, sends the superuser to confirm their password, and nothing changes."""
    finance = Group.objects.get(name="Finance")
    url = f"/admin/accounts/user/{client_user.pk}/change/"
    form = {
        "staff": {**_change_form(client_user), "is_staff": "on"},
        "superuser": {**_change_form(client_user), "is_superuser": "on"},
        "group": {**_change_form(client_user), "groups": [str(finance.pk)]},
    }.get(change)
    if form is None:
        url = f"/admin/accounts/user/{client_user.pk}/password/"
        form = {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, **USABLE}

    answer = _browser(superuser).post(url, form)

    assert answer.status_code == 302
    assert answer["Location"].startswith("/accounts/step-up/?next=")
    client_user.refresh_from_db()
    assert (client_user.is_staff, client_user.is_superuser) == (False, False)
    assert not client_user.groups.exists()
    assert client_user.check_password(PASSWORD)
    assert not AuditEntry.objects.filter(
        action="accounts.user.rights_changed", target_id=str(client_user.pk)
    ).exists()


def test_a_superuser_edits_a_name_without_stepping_up(superuser, client_user):
    form = {**_change_form(client_user), "name": "Clara Corrected"}

    answer = _browser(superuser).post(f"/admin/accounts/user/{client_user.pk}/change/", form)

    assert answer.status_code == 302
    assert "/step-up/" not in answer["Location"]
    client_user.refresh_from_db()
    assert client_user.name == "Clara Corrected"


def test_a_superuser_must_step_up_to_change_a_groups_permissions(superuser):
    support = Group.objects.get(name="Support")
    before = set(support.permissions.values_list("pk", flat=True))
    extra = Permission.objects.get(codename="change_user")

    answer = _browser(superuser).post(
        f"/admin/auth/group/{support.pk}/change/",
        {"name": "Support", "permissions": [str(pk) for pk in {*before, extra.pk}]},
    )

    assert answer["Location"].startswith("/accounts/step-up/")
    assert set(support.permissions.values_list("pk", flat=True)) == before


@pytest.mark.parametrize("is_active", ["", "on"])
def test_no_one_but_a_superuser_deactivates_or_reactivates_a_client(
    privacy, client_user, is_active
):
    """Deactivating a client (or bringing back an erased one) is a right: refused and
    audited when posted by hand, and absent from the form."""
    form = {**_change_form(client_user), "is_active": is_active}

    response = _browser(privacy).post(f"/admin/accounts/user/{client_user.pk}/change/", form)

    assert response.status_code == 403
    assert User.objects.get(pk=client_user.pk).is_active
    assert _refusals()[0].data["fields"] == ["is_active"]


def test_a_superuser_must_step_up_to_change_a_staff_members_email(superuser):
    colleague = _staff("finance2@slotpay.example", "Finance")
    form = {**_change_form(colleague), "email": "finance2b@slotpay.example"}
    browser = _browser(superuser)

    answer = browser.post(f"/admin/accounts/user/{colleague.pk}/change/", form)

    assert answer["Location"].startswith("/accounts/step-up/")
    assert User.objects.get(pk=colleague.pk).email == "finance2@slotpay.example"
    step_up(browser)
    assert browser.post(f"/admin/accounts/user/{colleague.pk}/change/", form).status_code == 302
    assert User.objects.get(pk=colleague.pk).email == "finance2b@slotpay.example"


def test_a_user_added_in_the_admin_names_who_added_it(superuser):
    browser = _browser(superuser)

    answer = browser.post(
        "/admin/accounts/user/add/",
        {
            "email": "new@client.example",
            "name": "New",
            "usable_password": "false",  # pragma: allowlist secret
        },
    )

    assert answer.status_code == 302
    new = User.objects.get(email_index__in=blind_indexes("new@client.example"))
    created = AuditEntry.objects.get(action="accounts.user.created", target_id=str(new.pk))
    assert created.actor_id == str(superuser.pk)


RIGHTS_POSTS = {
    "is_superuser": {"is_superuser": "on"},
    "is_staff": {"is_staff": "on"},
    "is_active": {"is_active": ""},
    "groups": {"groups": ["1"]},
    "user_permissions": {"user_permissions": ["1"]},
}


@pytest.mark.parametrize("group", ["Support", "Finance", "Privacy", "Auditor"])
@pytest.mark.parametrize("field", [*RIGHTS_POSTS, "password"])
def test_no_staff_group_changes_a_right_by_a_hand_made_post(group, field, superuser):
    """Every group, every right (and a colleague's password): refused, audited with
    the person who tried, nothing changed."""
    member = _staff(f"{group.lower()}@slotpay.example", group)
    before = (superuser.is_active, superuser.is_superuser, superuser.password)
    if field == "password":
        url = f"/admin/accounts/user/{superuser.pk}/password/"
        form = {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, **USABLE}
    else:
        url = f"/admin/accounts/user/{member.pk}/change/"
        form = RIGHTS_POSTS[field]

    response = _browser(member).post(url, form)

    assert response.status_code == 403
    superuser.refresh_from_db()
    member.refresh_from_db()
    assert (superuser.is_active, superuser.is_superuser, superuser.password) == before
    assert (member.is_superuser, member.is_active) == (False, True)
    assert list(member.groups.values_list("name", flat=True)) == [group]
    assert not member.user_permissions.exists()
    [refused] = _refusals()
    assert refused.actor_id == str(member.pk)
    assert field in refused.data["fields"]


def test_a_superuser_cannot_make_a_builders_member_staff(superuser, owner):
    """A member sees a builder's clients and refunds them, outside staff's controls: the
    form says to end the memberships first, and nothing changes."""
    browser = _browser(superuser)
    step_up(browser)

    answer = browser.post(
        f"/admin/accounts/user/{owner.pk}/change/", {**_change_form(owner), "is_staff": "on"}
    )

    assert answer.status_code == 200
    assert "a builder&#x27;s member: end its memberships first" in answer.content.decode()
    owner.refresh_from_db()
    assert not owner.is_staff
