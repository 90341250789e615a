"""Account events leave audit entries; none of them carries a plaintext email."""

import json

import pytest
from django.core.management import call_command

from accounts.models import User
from audit.models import AuditEntry
from tests.conftest import PASSWORD


def _actions() -> list[str]:
    return list(AuditEntry.objects.values_list("action", flat=True))


def test_creating_a_user_is_recorded_with_the_email_sealed(owner):
    entry = AuditEntry.objects.get(action="accounts.user.created")

    assert (entry.target_type, entry.target_id) == ("accounts.user", str(owner.pk))
    assert entry.category == "security"
    assert "example.com" not in json.dumps(entry.data).lower()
    assert json.loads(entry.personal_data)["values"] == {"email": "Owner@example.com"}


def test_sign_in_sign_out_and_failure_are_recorded(client, clerk):
    client.post("/admin/login/", {"username": "clerk@example.com", "password": "wrong"})
    client.post("/admin/login/", {"username": "CLERK@example.com", "password": PASSWORD})
    client.post("/admin/logout/")

    assert _actions()[-3:] == [
        "accounts.user.login_failed",
        "accounts.user.login_succeeded",
        "accounts.user.logged_out",
    ]
    failed = AuditEntry.objects.get(action="accounts.user.login_failed")
    assert failed.actor_type == "anonymous"
    assert "example.com" not in json.dumps(failed.data)


def test_a_password_change_is_recorded_once(owner):
    owner.set_password("a new and long passphrase")
    owner.save()
    owner.save()  # a later save without a new password records nothing

    changed = AuditEntry.objects.filter(action="accounts.user.password_changed")
    assert changed.count() == 1
    assert changed.get().actor_id == str(owner.pk)


def test_the_changepassword_command_is_recorded(owner, monkeypatch):
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "another long passphrase")

    call_command("changepassword", "owner@example.com")

    assert "accounts.user.password_changed" in _actions()
    assert User.objects.get(pk=owner.pk).check_password("another long passphrase")


@pytest.mark.django_db
def test_a_failed_account_creation_records_nothing():
    with pytest.raises(ValueError, match="email address is required"):
        User.objects.create_user(email="", password=PASSWORD)

    assert not AuditEntry.objects.exists()
