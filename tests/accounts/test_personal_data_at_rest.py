"""Emails and names are encrypted in the database; the blind index finds them."""

import pytest
from django.db import IntegrityError, connection

from accounts.models import User
from core.encryption import blind_index
from tests.conftest import PASSWORD


def _raw_user_row(user: User) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_user WHERE id = %s", [user.pk])
        return " ".join(str(value) for value in cursor.fetchone())


def test_raw_row_holds_no_plaintext_email_or_name(owner):
    row = _raw_user_row(owner).lower()

    assert "owner@example.com" not in row
    assert "olive" not in row
    assert blind_index("owner@example.com") in row


def test_reading_the_model_decrypts(owner):
    fresh = User.objects.get(pk=owner.pk)

    assert fresh.email == "Owner@example.com"  # domain normalised, local part kept
    assert fresh.name == "Olive Owner"


@pytest.mark.parametrize("typed", ["owner@example.com", "OWNER@EXAMPLE.COM", " Owner@Example.com "])
def test_lookup_by_email_ignores_case_and_spaces(owner, typed):
    assert User.objects.get_by_email(typed) == owner


def test_the_same_email_in_another_case_is_refused(owner):
    with pytest.raises(IntegrityError):
        User.objects.create_user(email="OWNER@example.com", password=PASSWORD)


def test_changing_the_email_moves_the_index(owner):
    owner.email = "new@example.org"
    owner.save(update_fields=["email"])

    assert User.objects.get_by_email("NEW@example.org") == owner
    assert not User.objects.filter(email_index=blind_index("owner@example.com")).exists()
