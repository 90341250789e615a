"""verify_field_encryption reads every row, names what does not decrypt, and records
the result for ``manage.py check``."""

import io
import re

import pytest
from cryptography.fernet import Fernet
from django.core.checks import run_checks
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError, SystemCheckError

from accounts.models import FieldKeyVerification, User
from audit.models import AuditEntry
from core.encryption import encrypted_fields, key_fingerprint
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def _verify(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_field_encryption", *args, stdout=out, stderr=err)
    except CommandError as error:
        out.write(f"CommandError: {error}")
    return out.getvalue(), err.getvalue()


def _slotpay_checks() -> list[str]:
    return [m.id for m in run_checks() if m.id and m.id.startswith("slotpay.")]


@pytest.fixture
def new_key(clients, old_key, field_keys):
    """Half a rotation, new rows, then the old key dropped: the audit rows between
    the rotated ones and the new ones no longer decrypt."""
    key = Fernet.generate_key().decode()
    field_keys(key, old_key)
    call_command(
        "rotate_field_encryption_key", "--limit", "11", stdout=io.StringIO(), stderr=io.StringIO()
    )
    for n in range(3):
        User.objects.create_user(email=f"late{n}@example.com", password=PASSWORD)
    field_keys(key)
    return key


def test_every_undecryptable_value_is_named_and_the_command_fails(new_key, old_key):
    out, err = _verify("--batch-size", "2")

    stuck = sorted(AuditEntry.objects.order_by("pk").values_list("pk", flat=True))[3:7]
    assert re.findall(r"does not decrypt: audit\.AuditEntry pk=(\d+) personal_data", out) == [
        str(pk) for pk in stuck
    ]
    assert "CommandError: 4 stored values do not decrypt" in out
    assert "accounts.User: 10 rows, 0 values under older keys, 0 that do not decrypt" in out
    # Nothing personal and no key material, only fingerprints.
    for text in (out, err):
        assert "@" not in text
        assert "gAAAA" not in text
        assert new_key not in text
        assert old_key not in text
    recorded = FieldKeyVerification.objects.get()
    assert (recorded.key_fingerprint, recorded.undecryptable_values) == (
        key_fingerprint(new_key),
        4,
    )
    assert not recorded.complete


def test_the_progress_bar_goes_to_stderr_and_counts_every_row(new_key):
    stored = sum(model._base_manager.count() for model, _ in encrypted_fields())

    out, err = _verify("--batch-size", "3")

    assert "accounts.User: 100%" in err
    assert "10/10" in err
    assert "audit.AuditEntry" in err
    assert "%|" not in out
    assert FieldKeyVerification.objects.get().rows == stored


def test_a_failed_verification_keeps_the_check_warning(new_key):
    _verify()

    messages = {m.id: m.msg for m in run_checks() if m.id and m.id.startswith("slotpay.")}

    assert list(messages) == ["slotpay.W002"]
    assert "found 4 values that do not decrypt" in messages["slotpay.W002"]


def test_values_under_an_older_key_are_counted_but_do_not_fail(clients, old_key, field_keys):
    key = Fernet.generate_key().decode()
    field_keys(key, old_key)

    out, _ = _verify()

    assert "CommandError" not in out
    assert "only with a key" in out
    assert "rotate_field_encryption_key" in out
    recorded = FieldKeyVerification.objects.get()
    assert recorded.older_key_values > 0
    assert recorded.undecryptable_values == 0
    assert _slotpay_checks() == ["slotpay.I001"]  # older keys still configured


def test_a_complete_verification_silences_the_check_and_is_audited(new_key, old_key, field_keys):
    field_keys(new_key, old_key)  # the old key back, and the rotation finished
    call_command("rotate_field_encryption_key", stdout=io.StringIO(), stderr=io.StringIO())
    field_keys(new_key)

    out, _ = _verify()

    assert f"Verified under key {key_fingerprint(new_key)}" in out
    assert _slotpay_checks() == []
    entry = AuditEntry.objects.filter(action="accounts.field_encryption_key.verified").last()
    assert entry.data["key_fingerprint"] == key_fingerprint(new_key)
    assert entry.data["undecryptable_values"] == 0


def _from_the_shell(name: str, out: io.StringIO) -> None:
    """Run a command as manage.py does, system checks included (call_command skips
    them), without closing the test's database connection afterwards."""
    command = load_command_class("accounts", name)
    options = vars(command.create_parser("manage.py", name).parse_args([]))
    command.execute(**{**options, "stdout": out, "stderr": io.StringIO()})


def test_it_runs_when_the_sampling_check_fails(clients, field_keys):
    """slotpay.E007 stops other commands; this one is how to see what it means."""
    field_keys(Fernet.generate_key().decode())
    with pytest.raises(SystemCheckError, match=r"slotpay\.E007"):
        _from_the_shell("rotate_field_encryption_key", io.StringIO())
    out = io.StringIO()

    with pytest.raises(CommandError, match="do not decrypt"):
        _from_the_shell("verify_field_encryption", out)

    assert "does not decrypt: accounts.EncryptionCanary pk=" in out.getvalue()


def test_a_batch_size_below_one_is_refused(db):
    with pytest.raises(CommandError, match="--batch-size"):
        call_command("verify_field_encryption", "--batch-size", "0", stdout=io.StringIO())
