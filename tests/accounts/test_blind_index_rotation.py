"""BLIND_INDEX_KEY takes a new key first; users sign in throughout the re-index."""

import hashlib
import hmac
import importlib
import io
import secrets
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection

from accounts.forms import UserCreationForm
from accounts.models import User
from audit.models import AuditEntry
from core.encryption import blind_index, blind_index_key_fingerprint, key_fingerprint
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

OLD = secrets.token_urlsafe(32)
NEW = secrets.token_urlsafe(32)


@pytest.fixture
def people(settings):
    """Five users indexed under the old key, the only one configured then."""
    settings.BLIND_INDEX_KEY = OLD
    return [
        User.objects.create_user(email=f"Person{n}@Example.com", password=PASSWORD)
        for n in range(5)
    ]


@pytest.fixture
def new_key_first(people, settings):
    settings.BLIND_INDEX_KEY = f"{NEW},{OLD}"
    return people


def _reindex(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("reindex_blind_index", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _keys_by_user() -> list[str]:
    return list(User.objects.order_by("pk").values_list("email_index_key", flat=True))


def _slotpay_checks() -> dict[str, str]:
    return {m.id: m.msg for m in run_checks() if m.id and m.id.startswith("slotpay.")}


def _sign_in(client, email: str):
    return client.post("/accounts/login/", {"username": email, "password": PASSWORD})


def test_one_key_works_as_before(people):
    expected = hmac.new(OLD.encode(), b"person0@example.com", hashlib.sha256).hexdigest()

    assert people[0].email_index == expected == blind_index(" PERSON0@example.com")
    assert _keys_by_user() == [key_fingerprint(OLD)] * 5
    assert blind_index_key_fingerprint() == key_fingerprint(OLD)
    assert _slotpay_checks() == {}


def test_new_and_changed_users_are_indexed_under_the_first_key(new_key_first, people):
    newcomer = User.objects.create_user(email="new@example.com", password=PASSWORD)
    people[1].email = "moved@example.com"
    people[1].save(update_fields=["email"])

    assert newcomer.email_index_key == people[1].email_index_key == key_fingerprint(NEW)
    assert User.objects.get_by_email("MOVED@example.com") == people[1]
    assert _keys_by_user()[0] == key_fingerprint(OLD)


def test_sign_in_works_mid_reindex_under_either_key(new_key_first, client, settings):
    _reindex("--limit", "2")
    assert _keys_by_user() == [key_fingerprint(NEW)] * 2 + [key_fingerprint(OLD)] * 3

    for email in ("person0@example.com", "PERSON4@example.com"):  # new key, old key
        client.logout()
        response = _sign_in(client, email)
        assert response.status_code == 302, email
        assert response["Location"] == "/bookings/"
        assert client.session["_auth_user_id"]


def test_sign_in_fails_for_users_under_a_removed_key_until_reindexed(people, client, settings):
    settings.BLIND_INDEX_KEY = NEW  # the old key dropped before re-indexing

    assert _sign_in(client, "person0@example.com").status_code == 200
    assert "cannot sign in" in _slotpay_checks()["slotpay.W003"]

    _reindex()  # recomputed from the decrypted email: the old key is not needed

    assert _sign_in(client, "person0@example.com").status_code == 302
    assert _slotpay_checks() == {}


def test_reindex_is_resumable_and_audited_by_fingerprint(new_key_first):
    first, _ = _reindex("--limit", "3", "--batch-size", "2")
    second, err = _reindex("--batch-size", "2")

    assert f"Re-index under blind-index key {key_fingerprint(NEW)} paused, 2 rows left" in first
    assert "accounts.User: 2 rows re-indexed" in second
    assert "complete" in second
    assert "2/2" in err  # the progress bar, on stderr
    assert _keys_by_user() == [key_fingerprint(NEW)] * 5
    assert User.objects.get(email_index=blind_index("person3@example.com")).pk
    paused, done = AuditEntry.objects.filter(action__startswith="accounts.blind_index.").order_by(
        "pk"
    )
    assert paused.action == "accounts.blind_index.reindex_paused"
    assert done.action == "accounts.blind_index.reindexed"
    assert done.data == {
        "key_fingerprint": key_fingerprint(NEW),
        "rows": 2,
        "previous_keys": {key_fingerprint(OLD): 2},
        "remaining": 0,
    }
    assert done.personal_data is None


def test_command_output_holds_no_email_or_key(new_key_first):
    out, err = _reindex()

    for text in (out, err):
        assert "@" not in text
        assert "person" not in text.lower()
        assert NEW not in text
        assert OLD not in text
    audit = AuditEntry.objects.filter(action="accounts.blind_index.reindexed").get()
    assert NEW not in str(audit.data)
    assert OLD not in str(audit.data)


def test_check_warns_while_rows_are_under_an_older_key(new_key_first):
    message = _slotpay_checks()["slotpay.W003"]

    assert message.startswith("5 users' email index was computed with an older BLIND_INDEX_KEY")
    assert key_fingerprint(OLD) in message
    assert "cannot sign in" not in message
    _reindex()
    assert _slotpay_checks() == {}


def test_an_address_under_the_old_key_is_still_taken(new_key_first, settings):
    form = UserCreationForm(
        data={
            "email": "PERSON2@example.com",
            "usable_password": "true",  # pragma: allowlist secret
            "password1": PASSWORD,
            "password2": PASSWORD,
        }
    )

    assert "already exists" in str(form.errors)
    with pytest.raises(IntegrityError, match="older index key"):
        User.objects.create_user(email="person2@example.com", password=PASSWORD)


def test_reindex_names_users_whose_address_another_holds(new_key_first):
    """A duplicate stored before the refusal existed: reported by pk, not by email."""
    twin = User.objects.create_user(email="twin@example.com", password=PASSWORD)
    User.objects.filter(pk=twin.pk).update(
        email="person1@example.com", email_index=blind_index("person1@example.com")
    )

    with pytest.raises(CommandError, match=rf"^Users {new_key_first[1].pk} have the email"):
        _reindex("--batch-size", "10")

    new, old = key_fingerprint(NEW), key_fingerprint(OLD)
    assert _keys_by_user() == [new, old, new, new, new, new]  # the rest went ahead
    assert "slotpay.W003" in _slotpay_checks()


def test_the_migration_labels_existing_indexes_with_the_single_key(people, settings):
    User.objects.update(email_index_key="")
    migration = importlib.import_module(
        "accounts.migrations.0004_blind_index_key_and_field_key_verification"
    )

    migration.label_existing_indexes(apps, SimpleNamespace(connection=connection))

    assert _keys_by_user() == [key_fingerprint(OLD)] * 5


def test_each_key_must_be_long_enough(settings):
    settings.BLIND_INDEX_KEY = f"{NEW},short"

    messages = [m.msg for m in run_checks() if m.id == "slotpay.E003"]

    assert messages == ["BLIND_INDEX_KEY entry 2 is missing or shorter than 32 characters."]
