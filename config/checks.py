"""System checks for unsafe configuration: ``manage.py check --deploy`` runs them all.

Later apps add theirs here (Stripe key mode, sandbox in production, ...), so that
one module answers "what makes a deployment unsafe".
"""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta
from typing import Any

from cryptography.fernet import Fernet
from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Info, Tags, Warning, register
from django.db import DatabaseError, connections
from django.db.models import Count, Max
from django.utils import timezone

from config import keys

MIN_SECRET_KEY_LENGTH = 50
MIN_BLIND_INDEX_KEY_LENGTH = 32
ONE_YEAR = 31_536_000
MIN_PATH_TOKEN_LENGTH = 24


def _production_like() -> bool:
    return settings.ENVIRONMENT in ("staging", "production")


def _is_ed25519_seed(value: Any) -> bool:
    raw = str(value or "").strip()
    try:
        return len(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))) == 32
    except (binascii.Error, ValueError):
        return False


@register(Tags.security, deploy=False)
def check_keys(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    from core.encryption import blind_index_keys

    errors = []
    if len(settings.SECRET_KEY or "") < MIN_SECRET_KEY_LENGTH:
        errors.append(
            Error(
                f"SECRET_KEY is missing or shorter than {MIN_SECRET_KEY_LENGTH} characters.",
                hint="Generate one: python -c 'import secrets; print(secrets.token_urlsafe(50))'",
                id="slotpay.E002",
            )
        )
    index_keys = blind_index_keys()
    for position, key in enumerate(index_keys, start=1):
        if len(key) < MIN_BLIND_INDEX_KEY_LENGTH:
            entry = (
                "BLIND_INDEX_KEY" if len(index_keys) == 1 else f"BLIND_INDEX_KEY entry {position}"
            )
            errors.append(
                Error(
                    f"{entry} is missing or shorter than {MIN_BLIND_INDEX_KEY_LENGTH} characters.",
                    hint="Generate one: python -c 'import secrets; "
                    "print(secrets.token_urlsafe(32))'",
                    id="slotpay.E003",
                )
            )
    if not _is_ed25519_seed(settings.AUDIT_CHECKPOINT_KEY):
        errors.append(
            Error(
                "AUDIT_CHECKPOINT_KEY is not 32 bytes of URL-safe base64 (an Ed25519 seed).",
                hint="Generate one: python -c 'import secrets; print(secrets.token_urlsafe(32))'",
                id="slotpay.E014",
            )
        )
    for position, public in enumerate(settings.AUDIT_CHECKPOINT_RETIRED_PUBLIC_KEYS, start=1):
        try:
            valid = len(base64.b64decode(public, validate=True)) == 32
        except (binascii.Error, ValueError):
            valid = False
        if not valid:
            errors.append(
                Error(
                    f"AUDIT_CHECKPOINT_RETIRED_PUBLIC_KEYS entry {position} is not an "
                    "Ed25519 public key (32 bytes, base64).",
                    hint="Copy it from an exported checkpoint's public_key.",
                    id="slotpay.E016",
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


@register(Tags.security, deploy=False)
def check_alert_recipients(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Production names who hears of a critical alert (core/alerts.py). The fallbacks
    (ADMINS, then the staff group an alert names) are for development: an empty group
    would swallow an incident without a trace."""
    if settings.ENVIRONMENT != "production" or settings.ALERT_EMAILS:
        return []
    return [
        Error(
            "ALERT_EMAILS is empty in production: critical alerts (a disabled Calendly "
            "subscription, dead-lettered webhooks, a broken audit chain) would reach no "
            "one for certain.",
            hint="Set ALERT_EMAILS to a comma-separated list of on-call addresses.",
            id="slotpay.E015",
        )
    ]


@register(Tags.security, deploy=False)
def check_key_versions(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """``<NAME>_VERSION`` is optional, but a malformed one would mislabel a key."""
    errors = []
    for name in settings.ROTATED_KEYS:
        try:
            keys.version_label(name)
        except ValueError as exc:
            errors.append(
                Error(
                    str(exc),
                    hint=f"Set {name}_VERSION to 1, 2, 3... (one more at each rotation), "
                    "or unset it.",
                    id="slotpay.E020",
                )
            )
    return errors


@register(Tags.security, deploy=True)
def check_key_ages(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """In production, every key of ``ROTATED_KEYS`` is rotated ``KEY_ROTATION_DAYS`` (90)
    after its ``<NAME>_CREATED`` date: a warning from ``KEY_ROTATION_WARNING_DAYS`` (14)
    before, an error after; a key without a date is a warning, as its age is unknown.

    A deployment check only: ``check --deploy`` (with ``--fail-level WARNING``, as the
    README's deploy runs it) stops a release, while ``migrate`` and the running site go
    on; the ``keys.rotation`` watchdog alerts about the same dates every five minutes.
    Keys are named by fingerprint and version, never shown.
    """
    messages: list[CheckMessage] = []
    today = timezone.now().date()
    for status in keys.inventory():
        name = status.name
        if status.created is not None and status.created > today + timedelta(days=1):
            messages.append(
                Error(
                    f"{name}_CREATED={status.created.isoformat()} is in the future: the key's "
                    "age, and so its rotation, cannot be tracked.",
                    hint=f"Set {name}_CREATED to the date the key was made (YYYY-MM-DD).",
                    id="slotpay.E021",
                )
            )
            continue
        if settings.ENVIRONMENT != "production":
            continue
        if status.created is None:
            messages.append(
                Warning(
                    f"{status.label()} has no creation date: its 90-day rotation cannot be "
                    "tracked.",
                    hint=f"Set {name}_CREATED to the date the key was made (YYYY-MM-DD).",
                    id="slotpay.W005",
                )
            )
            continue
        due = status.created + timedelta(days=settings.KEY_ROTATION_DAYS)
        age, left = (today - status.created).days, (due - today).days
        made = f"made {status.created.isoformat()}, rotated every {settings.KEY_ROTATION_DAYS} days"
        hint = (
            "Rotate it as docs/security-policy.md says for this key, then set "
            f"{name}_CREATED to the new key's date (and raise {name}_VERSION)."
        )
        if left < 0:
            messages.append(
                Error(
                    f"{status.label()} is {keys.days(age)} old: its rotation was due on "
                    f"{due.isoformat()} ({made}).",
                    hint=hint,
                    id="slotpay.E019",
                )
            )
        elif left <= settings.KEY_ROTATION_WARNING_DAYS:
            when = f"in {keys.days(left)}" if left else "today"
            messages.append(
                Warning(
                    f"{status.label()} is {keys.days(age)} old: its rotation is due on "
                    f"{due.isoformat()}, {when} ({made}).",
                    hint=hint,
                    id="slotpay.W004",
                )
            )
    return messages


def _migrated_encrypted_tables(connection: Any) -> set[str]:
    """Tables that hold every encrypted column their model declares.

    ``migrate`` runs the checks before it migrates: a table still waiting for a
    migration that adds an encrypted column is verified on the next run, not queried
    for a column it lacks (an error on PostgreSQL, a string literal on SQLite).
    """
    from core import encryption
    from core.encryption import encrypted_fields

    existing = set(connection.introspection.table_names())
    ready = set()
    with connection.cursor() as cursor:
        for model, names in encrypted_fields():
            table = model._meta.db_table
            if table not in existing:
                continue
            columns = {
                described.name
                for described in connection.introspection.get_table_description(cursor, table)
            }
            if {encryption.column(model, name) for name in names} <= columns:
                ready.add(table)
    return ready


@register(Tags.security, deploy=False)
def check_providers(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """The sandbox never in production; Stripe keys of the right mode and scope."""
    errors = []
    production = settings.ENVIRONMENT == "production"
    if settings.SANDBOX and settings.ENVIRONMENT in ("staging", "production"):
        # Staging too: a reachable site taking fake payments from anyone teaches
        # nothing about Stripe's test mode and invites abuse; it is never mounted there.
        errors.append(
            Error(
                f"SANDBOX is on with ENVIRONMENT={settings.ENVIRONMENT}: the sandbox stands "
                "in for Stripe and Calendly on a developer's machine and must never serve "
                "a deployed site.",
                hint="Unset SANDBOX (or set SANDBOX=false); use Stripe's test mode on staging.",
                id="slotpay.E008",
            )
        )
    key = settings.STRIPE_API_KEY or ""
    mode = keys.stripe_mode(key)
    if production and mode == "test":
        errors.append(
            Error(
                "STRIPE_API_KEY is a test-mode key (sk_test_ or rk_test_) in production: "
                "Stripe would take no real payment.",
                hint="Use a live-mode restricted key (rk_live_) in production.",
                id="slotpay.E009",
            )
        )
    if production and mode == "live" and keys.is_unrestricted_stripe_key(key):
        errors.append(
            Error(
                "STRIPE_API_KEY is an unrestricted live secret key (sk_live_) in production: "
                "whoever reads it can do anything with the Stripe account.",
                hint="Create a restricted key (rk_live_) with only the permissions README.md "
                "lists (Pointing at real Calendly and Stripe), put it in STRIPE_API_KEY, "
                "and stop using the sk_live_ key.",
                id="slotpay.E010",
            )
        )
    if settings.ENVIRONMENT in ("staging", "production") and key and mode is None:
        errors.append(
            Error(
                "STRIPE_API_KEY is not a Stripe secret or restricted key of a known mode "
                "(sk_ or rk_, then live_ or test_): its mode cannot be told.",
                hint="A publishable key (pk_) cannot make Slotpay's calls; use a restricted "
                "key (rk_live_ in production, rk_test_ on staging).",
                id="slotpay.E017",
            )
        )
    if production:
        for position, secret in enumerate(settings.STRIPE_WEBHOOK_SECRETS, start=1):
            if keys.is_sandbox_webhook_secret(secret):
                errors.append(
                    Error(
                        f"STRIPE_WEBHOOK_SECRETS entry {position} is a test-mode secret made "
                        "by Slotpay's development or test profile (whsec_test..., "
                        "whsec_sandbox...) in production.",
                        hint="Use the signing secret of the live-mode endpoint in the Stripe "
                        "Dashboard (Developers, Webhooks).",
                        id="slotpay.E018",
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
    if not production and mode == "live":
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
    """Decrypt the oldest and newest stored value of every encrypted column, and
    say when that sample cannot be trusted.

    The library would silently show ciphertext for a wrong key; this makes
    ``manage.py check`` (and so runserver, migrate and every deploy) fail instead.
    A rotation re-encrypts in pk order and new rows use the new key, so once one has
    started, both samples pass while rows in between may not decrypt: only a full
    ``verify_field_encryption`` under the current key since then vouches for them.
    """
    from core.encryption import undecryptable_samples

    if not settings.FIELD_ENCRYPTION_KEY:
        return []  # check_keys reports it
    connection = connections["default"]
    try:
        tables = _migrated_encrypted_tables(connection)
        failures = undecryptable_samples(tables)
        unverified = _field_encryption_unverified(connection)
    except DatabaseError as exc:
        return [
            Warning(
                "Could not reach the database to verify FIELD_ENCRYPTION_KEY "
                f"({type(exc).__name__}).",
                id="slotpay.W001",
            )
        ]
    messages: list[CheckMessage] = unverified
    if failures:
        messages.insert(
            0,
            Error(
                "FIELD_ENCRYPTION_KEY cannot decrypt stored data: " + ", ".join(failures) + ".",
                hint="Put the key the data was encrypted with back in FIELD_ENCRYPTION_KEY "
                "(after the new one) and run manage.py rotate_field_encryption_key.",
                id="slotpay.E007",
            ),
        )
    return messages


def _field_encryption_unverified(connection: Any) -> list[CheckMessage]:
    """A message when a key rotation (or a verification) has happened and no full
    verification since then found every value under the current key.

    Never an error: it means "not known", not "broken" (an error would also stop
    ``migrate`` and every command that diagnoses it). A warning when the current key
    is the only one, since values a rotation did not reach then do not decrypt;
    only information while older keys are still configured, which is the normal
    state between deploying a new key and finishing its rotation.
    """
    from core.encryption import encrypting_key_fingerprint

    rotation = apps.get_model("accounts", "FieldKeyRotation")
    verification = apps.get_model("accounts", "FieldKeyVerification")
    if verification._meta.db_table not in connection.introspection.table_names():
        return []  # before migrate: nothing recorded yet
    last_rotation = rotation.objects.aggregate(at=Max("updated_at"))["at"]
    if last_rotation is None and not verification.objects.exists():
        return []  # never rotated: the oldest value is under the oldest key, so sampled
    fingerprint = encrypting_key_fingerprint()
    latest = (
        verification.objects.filter(key_fingerprint=fingerprint).order_by("-started_at").first()
    )
    if latest is not None and (last_rotation is None or latest.started_at >= last_rotation):
        if latest.complete:
            return []
        found = (
            f"the last full verification found {latest.undecryptable_values} values that "
            f"do not decrypt and {latest.older_key_values} under older keys"
        )
    else:
        found = "no full verification under it has run since the last key rotation"
    if len(settings.FIELD_ENCRYPTION_KEY) > 1:
        return [
            Info(
                f"Stored data is not verified under FIELD_ENCRYPTION_KEY {fingerprint}: "
                f"{found}. Keep the older keys until it is.",
                hint="Run manage.py rotate_field_encryption_key (it verifies when done), or "
                "manage.py verify_field_encryption.",
                id="slotpay.I001",
            )
        ]
    return [
        Warning(
            f"Stored data is not verified under FIELD_ENCRYPTION_KEY {fingerprint}, its "
            f"only key: {found}. Values a rotation did not reach would not decrypt, and "
            "this check samples too few rows to see them.",
            hint="Run manage.py verify_field_encryption; if it lists values that do not "
            "decrypt, put the old key back after the new one and run "
            "manage.py rotate_field_encryption_key.",
            id="slotpay.W002",
        )
    ]


@register(Tags.security, deploy=False)
def check_blind_index_current(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Warn while users' email indexes were computed with a BLIND_INDEX_KEY other
    than the first: look-ups try every configured key, so those users sign in only
    as long as their key stays configured.

    Two index range scans on ``email_index_key`` answer the usual case (nothing to
    re-index) without reading the table.
    """
    from core.encryption import blind_index_key_fingerprint, blind_index_keys, key_fingerprint

    connection = connections["default"]
    try:
        user = apps.get_model("accounts", "User")
        if not _has_columns(connection, user._meta.db_table, {"email_index_key"}):
            return []  # before migrate
        users = user._default_manager
        current = blind_index_key_fingerprint()
        if not (
            users.filter(email_index_key__lt=current).exists()
            or users.filter(email_index_key__gt=current).exists()
        ):
            return []
        counts = dict(
            users.exclude(email_index_key=current)
            .values_list("email_index_key")
            .annotate(rows=Count("pk"))
            .order_by()
        )
    except DatabaseError:
        return []  # check_field_encryption_key_decrypts reports an unreachable database
    configured = {key_fingerprint(key) for key in blind_index_keys()}
    orphaned = sum(rows for key, rows in counts.items() if key not in configured)
    message = (
        f"{sum(counts.values())} users' email index was computed with an older "
        f"BLIND_INDEX_KEY ({', '.join(sorted(counts))}), not the current {current}"
    )
    if orphaned:
        message += f"; {orphaned} with a key no longer configured, so they cannot sign in"
    return [
        Warning(
            message + ".",
            hint="Run manage.py reindex_blind_index, then remove the older keys from "
            "BLIND_INDEX_KEY.",
            id="slotpay.W003",
        )
    ]


def _has_columns(connection: Any, table: str, columns: set[str]) -> bool:
    if table not in connection.introspection.table_names():
        return False
    with connection.cursor() as cursor:
        description = connection.introspection.get_table_description(cursor, table)
    return columns <= {column.name for column in description}


@register(Tags.compatibility, deploy=False)
def check_recovery_timings(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """A recovery that takes work over sooner than that work can last runs it twice
    beside itself: each timeout must outlast what it covers. (The refund lease's
    check is payments.checks.check_refund_timings.)"""
    pairs = [
        ("WEBHOOK_PROCESSING_TIMEOUT_SECONDS", settings.WEBHOOK_PROCESSING_TIMEOUT_SECONDS),
        ("OUTBOX_REDELIVER_AFTER_SECONDS", settings.OUTBOX_REDELIVER_AFTER_SECONDS),
    ]
    limit = settings.CELERY_TASK_TIME_LIMIT
    return [
        Warning(
            f"{name} is {value} s, not more than the task time limit ({limit} s): work "
            "still running may be taken over and done twice.",
            hint=f"Set {name} above {limit}.",
            id="slotpay.W006",
        )
        for name, value in pairs
        if value <= limit
    ]
