"""The staff groups exist from the first migration, with their permissions."""

import pytest
from django.contrib.auth.models import Group

pytestmark = pytest.mark.django_db


def _permissions(group_name: str) -> set[str]:
    group = Group.objects.get(name=group_name)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}


def test_the_four_staff_groups_exist():
    assert set(Group.objects.values_list("name", flat=True)) >= {
        "Support",
        "Finance",
        "Privacy",
        "Auditor",
    }


def test_auditors_read_the_audit_log_and_nothing_else():
    assert _permissions("Auditor") == {"audit.view_auditentry"}


def test_support_reads_but_cannot_change_accounts():
    permissions = _permissions("Support")

    assert "accounts.view_user" in permissions
    assert not any(p.split(".")[1].startswith(("change_", "delete_", "add_")) for p in permissions)


def test_privacy_can_correct_an_account():
    assert {"accounts.view_user", "accounts.change_user"} <= _permissions("Privacy")


def test_an_auditor_sees_the_audit_log_but_not_users(client, owner):
    owner.is_staff = True
    owner.save()
    owner.groups.add(Group.objects.get(name="Auditor"))
    client.force_login(owner)

    assert client.get("/admin/audit/auditentry/").status_code == 200
    assert client.get("/admin/accounts/user/").status_code == 403
