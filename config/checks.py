"""System checks for unsafe configuration: ``manage.py check --deploy`` runs them all.

Later apps add theirs here (Stripe key mode, sandbox in production, ...), so that
one module answers "what makes a deployment unsafe".
"""

from __future__ import annotations

from typing import Any

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.db import DatabaseError, connections

MIN_SECRET_KEY_LENGTH = 50
MIN_BLIND_INDEX_KEY_LENGTH = 32
ONE_YEAR = 31_536_000
MIN_PATH_TOKEN_LENGTH = 24


def _production_like() -> bool:
    return settings.ENVIRONMENT in ("staging", "production")


@register(Tags.security, deploy=False)
def check_keys(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    errors = []
    if len(settings.SECRET_KEY or "") < MIN_SECRET_KEY_LENGTH:
        errors.append(
            Error(
                f"SECRET_KEY is missing or shorter than {MIN_SECRET_KEY_LENGTH} characters.",
                hint="Generate one: python -c 'import secrets; print(secrets.token_urlsafe(50))'",
                id="slotpay.E002",
            )
        )
    if len(settings.BLIND_INDEX_KEY or "") < MIN_BLIND_INDEX_KEY_LENGTH:
        errors.append(
            Error(
                f"BLIND_INDEX_KEY is missing or shorter than {MIN_BLIND_INDEX_KEY_LENGTH} "
                "characters.",
                hint="Generate one: python -c 'import secrets; print(secrets.token_urlsafe(32))'",
                id="slotpay.E003",
            )
        )
    if not settings.FIELD_ENCRYPTION_KEY:
        errors.append(Error("FIELD_ENCRYPTION_KEY is missing.", id="slotpay.E004"))
    for position, key in enumerate(settings.FIELD_ENCRYPTION_KEY, start=1):
        try:
            Fernet(key)
        except ValueError:
            errors.append(
                Error(
                    f"FIELD_ENCRYPTION_KEY entry {position} is not a Fernet key "
                    "(32 url-safe base64-encoded bytes).",
                    hint="Generate one: python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'",
                    id="slotpay.E004",
                )
            )
    return errors


@register(Tags.security, deploy=False)
def check_production_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    if not _production_like():
        return []
    errors = []
    if settings.DEBUG:
        errors.append(
            Error(f"DEBUG is on with ENVIRONMENT={settings.ENVIRONMENT}.", id="slotpay.E001")
        )
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        errors.append(
            Error(
                f"ENVIRONMENT={settings.ENVIRONMENT} uses SQLite; production runs on PostgreSQL.",
                hint="Set DATABASE_URL to a postgres:// URL.",
                id="slotpay.E005",
            )
        )
    if getattr(settings, "SECURE_HSTS_SECONDS", 0) < ONE_YEAR or not (
        getattr(settings, "SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
    ):
        errors.append(
            Error(
                "HSTS is off or shorter than a year (SECURE_HSTS_SECONDS, "
                "SECURE_HSTS_INCLUDE_SUBDOMAINS).",
                id="slotpay.E006",
            )
        )
    return errors


def _migrated_encrypted_tables(connection: Any) -> set[str]:
    """Tables that hold every encrypted column their model declares.

    ``migrate`` runs the checks before it migrates: a table still waiting for a
    migration that adds an encrypted column is verified on the next run, not queried
    for a column it lacks (an error on PostgreSQL, a string literal on SQLite).
    """
    from core.encryption import encrypted_fields

    existing = set(connection.introspection.table_names())
    ready = set()
    with connection.cursor() as cursor:
        for model, names in encrypted_fields():
            table = model._meta.db_table
            if table not in existing:
                continue
            columns = {
                column.name
                for column in connection.introspection.get_table_description(cursor, table)
            }
            if {model._meta.get_field(name).column for name in names} <= columns:
                ready.add(table)
    return ready


@register(Tags.security, deploy=False)
def check_providers(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """The sandbox never in production; Stripe keys of the right mode and scope."""
    errors = []
    production = settings.ENVIRONMENT == "production"
    if production and settings.SANDBOX:
        errors.append(
            Error(
                "SANDBOX is on with ENVIRONMENT=production: the sandbox stands in for "
                "Stripe and Calendly and must never serve real clients.",
                hint="Unset SANDBOX (or set SANDBOX=false).",
                id="slotpay.E008",
            )
        )
    key = settings.STRIPE_API_KEY or ""
    if production and "_test_" in key:
        errors.append(Error("STRIPE_API_KEY is a test-mode key in production.", id="slotpay.E009"))
    if production and key.startswith("sk_"):
        errors.append(
            Error(
                "STRIPE_API_KEY is an unrestricted secret key (sk_) in production.",
                hint="Create a restricted key (rk_live_...) with only the permissions "
                "Slotpay uses; README.md lists them.",
                id="slotpay.E010",
            )
        )
    for name in ("STRIPE_WEBHOOK_PATH_TOKEN", "CALENDLY_WEBHOOK_PATH_TOKEN"):
        if len(getattr(settings, name, "") or "") < MIN_PATH_TOKEN_LENGTH:
            errors.append(
                Error(
                    f"{name} is shorter than {MIN_PATH_TOKEN_LENGTH} characters: the webhook "
                    "URL must be unguessable.",
                    hint="Generate one: python -c 'import secrets; "
                    "print(secrets.token_urlsafe(24))'",
                    id="slotpay.E012",
                )
            )
    for name in ("STRIPE_WEBHOOK_SECRETS", "CALENDLY_WEBHOOK_SIGNING_KEYS"):
        if not getattr(settings, name, None):
            errors.append(
                Error(f"{name} is empty: no webhook could be verified.", id="slotpay.E013")
            )
    if not production and "_live_" in key:
        errors.append(
            Error(
                f"STRIPE_API_KEY is a live-mode key with ENVIRONMENT={settings.ENVIRONMENT}.",
                hint="Use a test-mode key (sk_test_ or rk_test_) outside production.",
                id="slotpay.E011",
            )
        )
    return errors


@register(Tags.security, deploy=False)
def check_field_encryption_key_decrypts(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Decrypt the oldest and newest stored value of every encrypted column.

    The library would silently show ciphertext for a wrong key; this makes
    ``manage.py check`` (and so runserver, migrate and every deploy) fail instead.
    """
    from core.encryption import undecryptable_samples

    connection = connections["default"]
    try:
        tables = _migrated_encrypted_tables(connection)
        failures = undecryptable_samples(tables)
    except DatabaseError as exc:
        return [
            Warning(
                "Could not reach the database to verify FIELD_ENCRYPTION_KEY "
                f"({type(exc).__name__}).",
                id="slotpay.W001",
            )
        ]
    if not failures:
        return []
    return [
        Error(
            "FIELD_ENCRYPTION_KEY cannot decrypt stored data: " + ", ".join(failures) + ".",
            hint="Put the key the data was encrypted with back in FIELD_ENCRYPTION_KEY "
            "(after the new one) and run manage.py rotate_field_encryption_key.",
            id="slotpay.E007",
        )
    ]
