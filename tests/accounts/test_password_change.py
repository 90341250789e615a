"""Password change on the account page, and the password rules themselves."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client

from accounts import links
from accounts.models import OneTimeLink, User
from accounts.passwords import NotTheEmailValidator
from audit.models import AuditEntry
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

NEW = "another long passphrase 31"  # pragma: allowlist secret


def change(client: Client, capture, old: str = PASSWORD, new: str = NEW, again: str | None = None):
    with capture(execute=True):
        return client.post(
            "/accounts/password/",
            {"old_password": old, "new_password1": new, "new_password2": again or new},
        )


def test_changing_the_password_keeps_this_session_and_ends_the_others(
    stranger, django_capture_on_commit_callbacks
) -> None:
    here, elsewhere = Client(), Client()
    here.force_login(stranger)
    elsewhere.force_login(stranger)
    answer = change(here, django_capture_on_commit_callbacks)
    assert (answer.status_code, answer["Location"]) == (302, "/accounts/")
    stranger.refresh_from_db()
    assert stranger.check_password(NEW)
    assert here.get("/accounts/").status_code == 200
    assert elsewhere.get("/accounts/").status_code == 302
    [notice] = mail.outbox
    assert notice.to == ["stranger@example.net"]
    entry = AuditEntry.objects.get(action="accounts.user.password_changed")
    assert (entry.actor_id, entry.target_id) == (str(stranger.pk), str(stranger.pk))


def test_a_change_ends_the_reset_links(stranger, django_capture_on_commit_callbacks) -> None:
    secret = links.issue(
        OneTimeLink.Purpose.RESET_PASSWORD, max_age=timedelta(hours=1), user=stranger
    )
    here = Client()
    here.force_login(stranger)
    change(here, django_capture_on_commit_callbacks)
    assert links.peek(secret, OneTimeLink.Purpose.RESET_PASSWORD) is None


def test_the_current_password_is_needed(stranger, django_capture_on_commit_callbacks) -> None:
    here = Client()
    here.force_login(stranger)
    answer = change(here, django_capture_on_commit_callbacks, old="not my password at all")
    assert answer.status_code == 400
    assert "Your old password was entered incorrectly" in answer.content.decode()
    stranger.refresh_from_db()
    assert stranger.check_password(PASSWORD)
    assert mail.outbox == []


@pytest.mark.parametrize(
    ("new", "message"),
    [
        ("shortone", "too short"),
        ("password1234", "too common"),
        ("stranger@example.net", "cannot be your email address"),
        ("x" * 5000, "at most 4096"),
    ],
)
def test_the_rules_are_told_on_the_account_page(
    stranger, django_capture_on_commit_callbacks, new: str, message: str
) -> None:
    here = Client()
    here.force_login(stranger)
    answer = change(here, django_capture_on_commit_callbacks, new=new)
    assert answer.status_code == 400
    assert message in answer.content.decode()


def test_the_two_new_passwords_must_match(stranger, django_capture_on_commit_callbacks) -> None:
    here = Client()
    here.force_login(stranger)
    answer = change(here, django_capture_on_commit_callbacks, again=NEW + "!")
    assert answer.status_code == 400
    assert "match" in answer.content.decode()


def test_signed_out_nobody_changes_anything(client) -> None:
    answer = client.post("/accounts/password/", {"old_password": PASSWORD})
    assert answer["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize(
    "password",
    ["someone@example.org", "SOMEONE@EXAMPLE.ORG", "  someone@example.org  "],
)
def test_the_email_is_never_the_password(password: str) -> None:
    user = User(email="Someone@Example.org")
    with pytest.raises(ValidationError, match="cannot be your email address"):
        NotTheEmailValidator().validate(password, user)


def test_other_passwords_pass_the_email_rule() -> None:
    NotTheEmailValidator().validate("someone@example.org.x", User(email="someone@example.org"))
    NotTheEmailValidator().validate("anything", None)


def test_the_configured_rules_are_all_applied() -> None:
    user = User(email="person@example.org", name="Pat Person")
    for bad in ("short", "123456789012", "password1234", "person@example.org", "PatPerson123"):
        with pytest.raises(ValidationError):
            validate_password(bad, user)
    validate_password("a long and unusual passphrase 7", user)
