"""A wrong key fails loudly; rotation re-encrypts everything under the newest key."""

import io

import pytest
from cryptography.fernet import Fernet
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError
from django.db import connection

from accounts.models import FieldKeyRotation, User
from audit.models import AuditEntry
from audit.services import verify_chain
from core.encryption import UndecryptableValueError, key_fingerprint
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def _new_key() -> str:
    return Fernet.generate_key().decode()


def _raw_emails() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT email FROM accounts_user ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


def test_a_wrong_key_makes_check_fail_naming_the_field(clients, field_keys):
    field_keys(_new_key())

    with pytest.raises(SystemCheckError) as failure:
        call_command("check")

    assert "slotpay.E007" in str(failure.value)
    assert "accounts.User.email" in str(failure.value)


def test_a_wrong_key_raises_instead_of_showing_ciphertext(clients, field_keys):
    field_keys(_new_key())

    with pytest.raises(UndecryptableValueError, match=r"accounts\.User\.email"):
        User.objects.get(pk=clients[0].pk).email  # noqa: B018 (the read is the test)


def test_the_old_key_after_the_new_one_still_decrypts(clients, old_key, field_keys):
    field_keys(_new_key(), old_key)

    assert User.objects.get(pk=clients[0].pk).email == "client0@example.com"
    call_command("check")


def test_rotation_leaves_every_row_readable_with_the_new_key_alone(clients, old_key, field_keys):
    new_key = _new_key()
    field_keys(new_key, old_key)
    before = _raw_emails()
    out = io.StringIO()

    call_command(
        "rotate_field_encryption_key", "--batch-size", "3", stdout=out, stderr=io.StringIO()
    )

    assert all(a != b for a, b in zip(before, _raw_emails(), strict=True))
    assert f"Rotation to key {key_fingerprint(new_key)} complete" in out.getvalue()
    assert "accounts.User: 7 rows re-encrypted" in out.getvalue()
    field_keys(new_key)
    call_command("check")
    assert [user.email for user in User.objects.all()] == [
        f"client{n}@example.com" for n in range(7)
    ]
    assert verify_chain().ok  # audit personal data re-encrypted, chain intact
    rotated = AuditEntry.objects.filter(action="accounts.field_encryption_key.rotated").get()
    assert rotated.data["key_fingerprint"] == key_fingerprint(new_key)


def test_a_stopped_rotation_resumes_where_it_left_off(clients, old_key, field_keys):
    new_key = _new_key()
    field_keys(new_key, old_key)

    first = io.StringIO()
    call_command("rotate_field_encryption_key", "--limit", "4", stdout=first, stderr=io.StringIO())
    assert "paused" in first.getvalue()
    assert FieldKeyRotation.objects.filter(finished_at__isnull=True).exists()

    second = io.StringIO()
    call_command("rotate_field_encryption_key", stdout=second, stderr=io.StringIO())

    assert "complete" in second.getvalue()
    assert "4 rows done by earlier runs" in second.getvalue()
    field_keys(new_key)
    call_command("check")
    assert sorted(user.email for user in User.objects.all()) == sorted(
        f"client{n}@example.com" for n in range(7)
    )


def _slotpay_checks() -> dict[str, str]:
    return {m.id: m.msg for m in run_checks() if m.id and m.id.startswith("slotpay.")}


def _rotate(*args: str) -> str:
    out = io.StringIO()
    call_command("rotate_field_encryption_key", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def partly_rotated(clients, old_key, field_keys):
    """Rotation stopped inside the audit log, its last table with rows, and rows
    written since: the new key, then the old one."""
    new_key = _new_key()
    field_keys(new_key, old_key)
    assert AuditEntry.objects.count() == 7  # one per client, under the old key
    _rotate("--limit", "11")  # 7 users, the canary, then 3 of the 7 audit entries
    for n in range(3):
        User.objects.create_user(email=f"late{n}@example.com", password=PASSWORD)
    return new_key


def test_check_does_not_pass_a_partial_rotation_once_the_old_key_is_gone(
    partly_rotated, field_keys
):
    """Rotation goes in pk order and new rows use the new key: the oldest and newest
    samples of each column decrypt while the audit rows in between do not."""
    field_keys(partly_rotated)
    with pytest.raises(UndecryptableValueError, match=r"audit\.AuditEntry\.personal_data"):
        [entry.personal_data for entry in AuditEntry.objects.all()]

    messages = _slotpay_checks()

    assert list(messages) == ["slotpay.W002"]  # samples alone saw nothing (no E007)
    assert key_fingerprint(partly_rotated) in messages["slotpay.W002"]
    with pytest.raises(SystemCheckError, match="verify_field_encryption"):
        call_command("check", fail_level="WARNING", stderr=io.StringIO())


def test_a_rotation_in_progress_with_the_old_key_kept_is_only_information(
    partly_rotated, field_keys
):
    """Between deploying a new key and finishing its rotation nothing is unsafe, so
    a deploy gate at --fail-level WARNING must still pass."""
    assert list(_slotpay_checks()) == ["slotpay.I001"]

    call_command("check", fail_level="WARNING", stdout=io.StringIO(), stderr=io.StringIO())


def test_a_fresh_database_needs_no_verification(db):
    assert _slotpay_checks() == {}


def test_rotation_reports_complete_only_after_verifying_under_the_new_key(
    partly_rotated, old_key, field_keys
):
    out = _rotate()

    assert "Every row re-encrypted; verifying under key" in out
    assert "accounts.User: 10 rows," in out  # the verification's own line
    assert f"Rotation to key {key_fingerprint(partly_rotated)} complete" in out
    assert "verified" in out
    field_keys(partly_rotated)
    assert _slotpay_checks() == {}
    call_command("check", fail_level="WARNING", stdout=io.StringIO(), stderr=io.StringIO())


def test_rotation_refuses_complete_when_a_process_still_wrote_with_the_old_key(
    clients, old_key, field_keys
):
    new_key = _new_key()
    field_keys(new_key, old_key)
    assert "complete" in _rotate()
    field_keys(old_key, new_key)  # a server not yet given the new key
    User.objects.create_user(email="lagging@example.com", password=PASSWORD)
    field_keys(new_key, old_key)

    with pytest.raises(CommandError, match=r"is not complete: .* 0 values do not decrypt and 3"):
        _rotate()  # the lagging user's email, name and audit entry

    assert AuditEntry.objects.filter(
        action="accounts.field_encryption_key.rotation_unverified"
    ).exists()
    assert list(_slotpay_checks()) == ["slotpay.I001"]
    assert "complete" in _rotate("--restart")
