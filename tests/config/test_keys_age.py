"""Key hygiene: every key dated and versioned, warned 14 days before its 90-day rotation
and refused after it in production, and described by ``manage.py keys_status`` by
fingerprint, version, age and due date, never by its value."""

from __future__ import annotations

import io
import json
import re
import secrets
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.management import call_command

from config import checks, keys
from core.encryption import key_fingerprint
from tests.config.conftest import ROTATED_KEYS as ROTATED
from tests.config.conftest import production_values


def _today() -> date:
    return datetime.now(UTC).date()


@pytest.fixture
def production_keys(settings):
    """Production's key settings, every key made today; the tests age one of them."""
    settings.ENVIRONMENT = "production"
    settings.KEY_ROTATION_DAYS = 90
    settings.KEY_ROTATION_WARNING_DAYS = 14
    settings.KEY_CREATED = dict.fromkeys(settings.ROTATED_KEYS, _today())
    settings.KEY_VERSION = dict.fromkeys(settings.ROTATED_KEYS, "")
    settings.STRIPE_API_KEY = (
        "rk_" + "live_" + "FAKE" + secrets.token_hex(12)
    )  # pragma: allowlist secret
    return settings


def _age_messages() -> list:
    return checks.check_key_ages()


@pytest.mark.parametrize(
    ("days_old", "expected"),
    [
        (0, []),
        (75, []),  # due in 15 days: not yet
        (76, ["slotpay.W004"]),  # due in 14 days: warned
        (90, ["slotpay.W004"]),  # due today
        (91, ["slotpay.E019"]),  # overdue: refused
        (400, ["slotpay.E019"]),
    ],
)
def test_a_key_is_warned_14_days_before_90_and_refused_after(production_keys, days_old, expected):
    production_keys.KEY_CREATED["STRIPE_API_KEY"] = _today() - timedelta(days=days_old)

    messages = _age_messages()

    assert [m.id for m in messages] == expected
    for message in messages:
        assert message.msg.startswith(
            f"STRIPE_API_KEY {key_fingerprint(production_keys.STRIPE_API_KEY)} is "
        )
        assert production_keys.STRIPE_API_KEY[:8] not in message.msg + message.hint


def test_the_overdue_message_says_the_age_the_due_date_and_what_to_do(production_keys):
    made = _today() - timedelta(days=91)
    production_keys.KEY_CREATED["SECRET_KEY"] = made
    production_keys.KEY_VERSION["SECRET_KEY"] = "4"

    [message] = _age_messages()

    assert message.id == "slotpay.E019"
    assert message.msg == (
        f"SECRET_KEY {key_fingerprint(production_keys.SECRET_KEY)} v4 is 91 days old: its "
        f"rotation was due on {(made + timedelta(days=90)).isoformat()} "
        f"(made {made.isoformat()}, rotated every 90 days)."
    )
    assert "docs/security-policy.md" in message.hint
    assert "SECRET_KEY_CREATED" in message.hint


@pytest.mark.parametrize("environment", ["development", "test", "staging"])
def test_ages_are_production_s_concern_only(production_keys, environment):
    production_keys.ENVIRONMENT = environment
    test_key = "rk_test_FAKE" + secrets.token_hex(8)  # pragma: allowlist secret
    production_keys.STRIPE_API_KEY = test_key
    production_keys.KEY_CREATED = {"SECRET_KEY": _today() - timedelta(days=200)}

    assert _age_messages() == []


def test_an_undated_key_in_production_is_a_warning_naming_the_variable(production_keys):
    del production_keys.KEY_CREATED["CALENDLY_API_TOKEN"]

    [message] = _age_messages()

    assert message.id == "slotpay.W005"
    assert message.msg.startswith("CALENDLY_API_TOKEN ")
    assert "CALENDLY_API_TOKEN_CREATED" in message.hint


def test_a_creation_date_in_the_future_is_an_error(production_keys):
    production_keys.KEY_CREATED["BLIND_INDEX_KEY"] = _today() + timedelta(days=30)

    assert [m.id for m in _age_messages()] == ["slotpay.E021"]


@pytest.mark.parametrize("version", ["0", "-1", "two", "1.5", "\uff13"])
def test_a_malformed_version_is_an_error(production_keys, version):
    production_keys.KEY_VERSION["FIELD_ENCRYPTION_KEY"] = version

    messages = checks.check_key_versions()

    assert [m.id for m in messages] == ["slotpay.E020"]
    assert [m.msg for m in messages] == [
        f"FIELD_ENCRYPTION_KEY_VERSION={version!r} is not a positive whole number."
    ]


def test_the_inventory_names_list_entries_by_fingerprint_the_current_first(settings):
    settings.STRIPE_WEBHOOK_SECRETS = ["whsec_new" + "1" * 20, "whsec_old" + "2" * 20]
    settings.BLIND_INDEX_KEY = "b" * 40 + "," + "c" * 40
    settings.KEY_VERSION = {"STRIPE_WEBHOOK_SECRETS": "7"}

    webhook = keys.key_status("STRIPE_WEBHOOK_SECRETS")
    index = keys.key_status("BLIND_INDEX_KEY")

    assert (webhook.fingerprint, webhook.older, webhook.version) == (
        key_fingerprint(settings.STRIPE_WEBHOOK_SECRETS[0]),
        (key_fingerprint(settings.STRIPE_WEBHOOK_SECRETS[1]),),
        "v7",
    )
    assert (index.fingerprint, index.older) == (
        key_fingerprint("b" * 40),
        (key_fingerprint("c" * 40),),
    )


# --- manage.py keys_status ----------------------------------------------------------------


def _status(*args: str) -> str:
    out = io.StringIO()
    call_command("keys_status", *args, stdout=out)
    return out.getvalue()


def _every_key_value(settings) -> list[str]:
    return [value for name in settings.ROTATED_KEYS for value in keys.values(name)]


def test_keys_status_shows_fingerprint_version_age_and_due_date(production_keys):
    today = _today()
    production_keys.KEY_CREATED["STRIPE_API_KEY"] = today - timedelta(days=91)
    production_keys.KEY_CREATED["SECRET_KEY"] = today - timedelta(days=80)
    production_keys.KEY_VERSION["STRIPE_API_KEY"] = "3"
    del production_keys.KEY_CREATED["CALENDLY_API_TOKEN"]

    lines = {line.split()[0]: line.split() for line in _status().splitlines()[2:]}

    stripe = key_fingerprint(production_keys.STRIPE_API_KEY)
    assert lines["STRIPE_API_KEY"] == [
        "STRIPE_API_KEY",
        stripe,
        "v3",
        (today - timedelta(days=91)).isoformat(),
        "91",
        "d",
        (today - timedelta(days=1)).isoformat(),
        "overdue",
        "by",
        "1",
        "day",
    ]
    assert lines["SECRET_KEY"][2:] == [
        "-",
        (today - timedelta(days=80)).isoformat(),
        "80",
        "d",
        (today + timedelta(days=10)).isoformat(),
        "due",
        "in",
        "10",
        "days",
    ]
    assert lines["FIELD_ENCRYPTION_KEY"][-1] == "ok"
    assert " ".join(lines["CALENDLY_API_TOKEN"][2:]) == (
        "- - - - no creation date (set CALENDLY_API_TOKEN_CREATED)"
    )
    assert list(lines) == list(ROTATED)


def test_keys_status_never_prints_a_key(production_keys):
    production_keys.FIELD_ENCRYPTION_KEY = [
        *production_keys.FIELD_ENCRYPTION_KEY,
        "older" + secrets.token_urlsafe(38),
    ]
    shown = _status() + _status("--json")

    for value in _every_key_value(production_keys):
        # No key, nor any 8 characters of one (a prefix is no fingerprint).
        chunks = {value[i : i + 8] for i in range(len(value) - 7)}
        assert not any(chunk in shown for chunk in chunks), value[:4]
    assert (
        f"FIELD_ENCRYPTION_KEY: older entries still accepted: "
        f"{key_fingerprint(production_keys.FIELD_ENCRYPTION_KEY[1])}"
    ) in shown


def test_keys_status_json_is_one_object_per_key(production_keys):
    production_keys.KEY_CREATED["AUDIT_CHECKPOINT_KEY"] = _today() - timedelta(days=30)

    rows = [json.loads(line) for line in _status("--json").splitlines()]

    assert [row["key"] for row in rows] == list(ROTATED)
    checkpoint = rows[3]
    assert checkpoint == {
        "key": "AUDIT_CHECKPOINT_KEY",
        "fingerprint": key_fingerprint(production_keys.AUDIT_CHECKPOINT_KEY),
        "version": None,
        "created": (_today() - timedelta(days=30)).isoformat(),
        "age": 30,
        "due": (_today() + timedelta(days=60)).isoformat(),
        "state": "ok",
        "older": [],
    }


# --- The done-when, in a production process of its own --------------------------


def _dated(values: dict[str, str], **ages: int) -> dict[str, str]:
    """Every key dated today, except those given an age in days."""
    today = _today()
    return values | {
        f"{name}_CREATED": (today - timedelta(days=ages.get(name, 0))).isoformat()
        for name in ROTATED
    }


def test_production_with_a_test_key_fails_check_deploy_naming_its_mode(manage, profile_database):
    values = _dated(production_values()) | {"STRIPE_API_KEY": "sk_test_FAKE" + secrets.token_hex(8)}

    result = manage("check", "--deploy", environment="production", values=values)

    assert result.returncode != 0
    assert "slotpay.E009" in result.stderr
    assert "STRIPE_API_KEY is a test-mode key (sk_test_ or rk_test_) in production" in (
        result.stderr
    )
    assert values["STRIPE_API_KEY"] not in result.stdout + result.stderr


def test_production_with_a_live_secret_key_fails_naming_the_restricted_key_remedy(
    manage, profile_database
):
    values = _dated(production_values()) | {"STRIPE_API_KEY": "sk_" + "live_FAKE" + "0" * 24}

    result = manage("check", "--deploy", environment="production", values=values)

    assert result.returncode != 0
    assert "slotpay.E010" in result.stderr
    assert "Create a restricted key (rk_live_) with only the permissions README.md" in re.sub(
        r"\s+", " ", result.stderr
    )
    assert values["STRIPE_API_KEY"] not in result.stdout + result.stderr


def test_production_with_a_key_91_days_old_fails(manage, profile_database):
    values = _dated(production_values(), CALENDLY_WEBHOOK_SIGNING_KEYS=91)

    result = manage("check", "--deploy", environment="production", values=values)

    assert result.returncode != 0
    assert "slotpay.E019" in result.stderr
    assert "CALENDLY_WEBHOOK_SIGNING_KEYS " in result.stderr
    assert "is 91 days old" in result.stderr


def test_production_with_every_key_dated_today_passes_at_warning_level(manage, profile_database):
    """What CI's check runs (.ci/run): every key dated, nothing to warn about."""
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        environment="production",
        values=_dated(production_values()),
    )

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
