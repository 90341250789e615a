"""``manage.py check --deploy`` refuses unsafe production settings (slotpay.E001-E021)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet
from django.core.checks import run_checks
from django.db import connection, transaction
from django.test import override_settings

from tests.config.conftest import ROTATED_KEYS

pytestmark = pytest.mark.django_db

POSTGRES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "slotpay"}}
SQLITE = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "slotpay.sqlite3"}}

GOOD_PRODUCTION = {
    "ENVIRONMENT": "production",
    "ALERT_EMAILS": ["oncall@slotpay.example"],
    "DEBUG": False,
    "SECRET_KEY": secrets.token_urlsafe(50),
    "BLIND_INDEX_KEY": secrets.token_urlsafe(32),
    "AUDIT_CHECKPOINT_KEY": secrets.token_urlsafe(32),
    "FIELD_ENCRYPTION_KEY": [Fernet.generate_key().decode()],
    "SECURE_HSTS_SECONDS": 31_536_000,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
    "SANDBOX": False,
    # Built at run time so that nothing resembling a live key sits in the source.
    "STRIPE_API_KEY": "rk_" + "live_" + "FAKE" + secrets.token_hex(12),
    "STRIPE_WEBHOOK_SECRETS": ["whsec_FAKE" + secrets.token_hex(16)],
    # Every key made today: key ages are their own tests (tests/config/test_keys_age.py).
    "KEY_CREATED": dict.fromkeys(ROTATED_KEYS, datetime.now(UTC).date()),
}


# Keys of no Stripe mode, built at run time like the others.
PUBLISHABLE_KEY = "pk_" + "live_" + "FAKE" + secrets.token_hex(8)  # pragma: allowlist secret
MODELESS_KEY = "FAKE" + secrets.token_hex(8)  # pragma: allowlist secret


def _slotpay_ids(**overrides: object) -> list[str]:
    """Run every check, deployment ones included, with production settings."""
    databases = overrides.pop("DATABASES", POSTGRES)
    # override_settings warns that DATABASES does not reach open connections: the
    # checks read the setting only, which is what is wanted here.
    with (
        pytest.warns(UserWarning, match="Overriding setting DATABASES"),
        override_settings(**{**GOOD_PRODUCTION, **overrides}, DATABASES=databases),
    ):
        messages = run_checks(include_deployment_checks=True)
    return sorted(m.id for m in messages if m.id and m.id.startswith("slotpay."))


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_a_good_production_configuration_passes(environment):
    key = GOOD_PRODUCTION["STRIPE_API_KEY"]
    if environment == "staging":
        key = "rk_test_FAKE" + secrets.token_hex(12)
    assert _slotpay_ids(ENVIRONMENT=environment, STRIPE_API_KEY=key) == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({"SANDBOX": True}, ["slotpay.E008"], id="E008-sandbox"),
        pytest.param(
            {
                "SANDBOX": True,
                "ENVIRONMENT": "staging",
                "STRIPE_API_KEY": "rk_test_FAKE0",  # pragma: allowlist secret
            },
            ["slotpay.E008"],
            id="E008-sandbox-on-staging",
        ),
        pytest.param(
            {"STRIPE_API_KEY": "rk_test_FAKE" + secrets.token_hex(8)},
            ["slotpay.E009"],
            id="E009-test-key",
        ),
        pytest.param(
            {"STRIPE_API_KEY": "sk_test_FAKE" + secrets.token_hex(8)},
            ["slotpay.E009"],
            id="E009-unrestricted-test-key",
        ),
        pytest.param(
            {"STRIPE_API_KEY": "sk_" + "live_" + "FAKE" + secrets.token_hex(8)},
            ["slotpay.E010"],
            id="E010-unrestricted-key",
        ),
        pytest.param(
            {"STRIPE_API_KEY": PUBLISHABLE_KEY},
            ["slotpay.E017"],
            id="E017-publishable-key",
        ),
        pytest.param(
            {"ENVIRONMENT": "staging", "STRIPE_API_KEY": MODELESS_KEY},
            ["slotpay.E017"],
            id="E017-no-mode-on-staging",
        ),
        pytest.param(
            {"STRIPE_WEBHOOK_SECRETS": ["whsec_FAKE" + secrets.token_hex(8), "whsec_test0"]},
            ["slotpay.E018"],
            id="E018-test-profile-webhook-secret",
        ),
        pytest.param(
            {"STRIPE_WEBHOOK_SECRETS": ["whsec_sandbox" + secrets.token_hex(8)]},
            ["slotpay.E018"],
            id="E018-sandbox-webhook-secret",
        ),
        pytest.param(
            {
                "ENVIRONMENT": "staging",
                "STRIPE_API_KEY": "rk_" + "live_FAKE" + secrets.token_hex(8),
            },
            ["slotpay.E011"],
            id="E011-live-key-in-staging",
        ),
        pytest.param(
            {"STRIPE_WEBHOOK_PATH_TOKEN": "webhook"},
            ["slotpay.E012"],
            id="E012-guessable-webhook-path",
        ),
        pytest.param(
            {"CALENDLY_WEBHOOK_SIGNING_KEYS": []},
            ["slotpay.E013"],
            id="E013-no-webhook-keys",
        ),
    ],
)
def test_provider_settings_that_are_unsafe(overrides, expected):
    assert _slotpay_ids(**overrides) == expected


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({"DEBUG": True}, ["slotpay.E001"], id="E001-debug"),
        pytest.param({"SECRET_KEY": "x" * 49}, ["slotpay.E002"], id="E002-short-secret-key"),
        pytest.param({"BLIND_INDEX_KEY": "y" * 31}, ["slotpay.E003"], id="E003-short-index-key"),
        pytest.param(
            {"AUDIT_CHECKPOINT_KEY": "short"}, ["slotpay.E014"], id="E014-short-checkpoint-key"
        ),
        pytest.param(
            {"AUDIT_CHECKPOINT_KEY": "not base64!" * 4}, ["slotpay.E014"], id="E014-not-base64"
        ),
        pytest.param(
            {"AUDIT_CHECKPOINT_RETIRED_PUBLIC_KEYS": ["c2hvcnQ="]},
            ["slotpay.E016"],
            id="E016-retired-key-too-short",
        ),
        pytest.param(
            {"AUDIT_CHECKPOINT_RETIRED_PUBLIC_KEYS": ["not base64!"]},
            ["slotpay.E016"],
            id="E016-retired-key-not-base64",
        ),
        pytest.param(
            {"FIELD_ENCRYPTION_KEY": ["not-a-fernet-key"]}, ["slotpay.E004"], id="E004-bad-key"
        ),
        pytest.param(
            # 32 bytes, but not url-safe base64 of them.
            {"FIELD_ENCRYPTION_KEY": [Fernet.generate_key().decode(), "a" * 31 + "!"]},
            ["slotpay.E004"],
            id="E004-second-key-bad",
        ),
        pytest.param({"FIELD_ENCRYPTION_KEY": []}, ["slotpay.E004"], id="E004-no-key"),
        pytest.param({"DATABASES": SQLITE}, ["slotpay.E005"], id="E005-sqlite"),
        pytest.param({"SECURE_HSTS_SECONDS": 0}, ["slotpay.E006"], id="E006-hsts-off"),
        pytest.param({"SECURE_HSTS_SECONDS": 3600}, ["slotpay.E006"], id="E006-hsts-short"),
        pytest.param(
            {"SECURE_HSTS_INCLUDE_SUBDOMAINS": False}, ["slotpay.E006"], id="E006-no-subdomains"
        ),
    ],
)
def test_each_unsafe_setting_is_an_error(overrides, expected):
    assert _slotpay_ids(**overrides) == expected


def test_development_may_debug_on_sqlite_without_hsts():
    ids = _slotpay_ids(
        ENVIRONMENT="development",
        DEBUG=True,
        DATABASES=SQLITE,
        SECURE_HSTS_SECONDS=0,
        SANDBOX=True,
        STRIPE_API_KEY="sk_test_FAKE" + secrets.token_hex(8),
        # The sandbox's own webhook secret, and no key dated: fine on a laptop.
        STRIPE_WEBHOOK_SECRETS=["whsec_sandbox" + secrets.token_hex(8)],
        KEY_CREATED={},
    )

    assert ids == []


def test_a_pending_migration_on_an_encrypted_table_does_not_break_the_checks(owner):
    """``migrate`` runs the checks before migrating: a column that a pending migration
    adds must neither crash them (PostgreSQL) nor be read as ciphertext (SQLite reads
    an unknown quoted column as a string literal), i.e. no false slotpay.E007."""
    table, quote = "accounts_user", connection.ops.quote_name
    rename = f"ALTER TABLE {quote(table)} RENAME COLUMN {quote('name')} TO {quote('name_new')}"
    rename_back = f"ALTER TABLE {quote(table)} RENAME COLUMN {quote('name_new')} TO {quote('name')}"
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(rename)
        messages = run_checks()
        with connection.cursor() as cursor:
            cursor.execute(rename_back)

    assert [m.id for m in messages if m.id and m.id.startswith("slotpay.")] == []
