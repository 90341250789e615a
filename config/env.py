"""Reading configuration from the environment, failing closed.

Every secret may be given directly (``NAME``) or as a path (``NAME_FILE``), so that
container secrets and systemd credentials work without copying them into the
environment. In staging and production a missing secret stops start-up with a
message naming it; only the development and test profiles invent values.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from pathlib import Path
from typing import Any

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

PROFILES = ("development", "test", "staging", "production")


class ConfigurationError(ImproperlyConfigured):
    """A variable is missing or malformed; the message names it."""


def profile() -> str:
    name = os.environ.get("ENVIRONMENT", "development").strip().lower()
    if name not in PROFILES:
        raise ConfigurationError(f"ENVIRONMENT={name!r} is not one of: {', '.join(PROFILES)}.")
    return name


def read_secret(name: str, *, required: bool) -> str | None:
    """Return ``NAME`` or the contents of the file named by ``NAME_FILE``."""
    # Blank counts as unset: REDIS_URL=" " must not pass for a configured broker.
    direct = (os.environ.get(name) or "").strip()
    path = os.environ.get(f"{name}_FILE")
    if direct and path:
        raise ConfigurationError(f"Set {name} or {name}_FILE, not both.")
    if path:
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigurationError(
                f"{name}_FILE={path} cannot be read ({exc.strerror})."
            ) from None
        if not value:
            raise ConfigurationError(f"{name}_FILE={path} is empty.")
        return value
    if direct:
        return direct
    if required:
        raise ConfigurationError(
            f"{name} is required when ENVIRONMENT={profile()} (set {name} or {name}_FILE)."
        )
    return None


def split_list(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def iso_date(name: str) -> dt.date | None:
    """``NAME`` as an ISO date (``2026-11-30``), or None when unset; a malformed one
    stops start-up naming the variable."""
    value = (os.environ.get(name) or "").strip()
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not an ISO date (YYYY-MM-DD).") from None


def networks(name: str, value: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """A comma-separated list of CIDRs (a bare address is a /32 or /128)."""
    try:
        return [ipaddress.ip_network(item, strict=False) for item in split_list(value)]
    except ValueError as exc:
        raise ConfigurationError(f"{name} holds an invalid address or network: {exc}") from exc


def generated_development_values() -> dict[str, str]:
    """Fresh keys for development; never used elsewhere.

    The Stripe and Calendly values are the sandbox's: test-mode keys that only the
    local stand-ins accept.
    """
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "BLIND_INDEX_KEY": secrets.token_urlsafe(32),
        "AUDIT_CHECKPOINT_KEY": secrets.token_urlsafe(32),
        "STRIPE_API_KEY": f"sk_test_sandbox{secrets.token_hex(12)}",
        "STRIPE_WEBHOOK_SECRETS": f"whsec_sandbox{secrets.token_hex(16)}",
        "CALENDLY_API_TOKEN": f"sandbox-{secrets.token_urlsafe(24)}",
        "CALENDLY_WEBHOOK_SIGNING_KEYS": secrets.token_urlsafe(32),
        "STRIPE_WEBHOOK_PATH_TOKEN": secrets.token_urlsafe(24),
        "CALENDLY_WEBHOOK_PATH_TOKEN": secrets.token_urlsafe(24),
    }


def sandbox_database(default: dict[str, Any], base_dir: Path) -> dict[str, Any] | None:
    """The development sandbox's own database, or None to share ``default``.

    On SQLite the sandbox keeps its state in a file of its own (sandbox/db.py says
    why: one file is one write lock). PostgreSQL locks rows, so there it shares the
    default database, as in the tests: a second alias onto the same database would
    share one migration history, and each alias would skip what the other recorded.
    """
    if default["ENGINE"] != "django.db.backends.sqlite3":
        return None
    return {**default, "NAME": str(base_dir / "db-sandbox.sqlite3")}


def load_dotenv(base_dir: Path) -> None:
    """In development, read ``.env``, writing fresh keys into it on the first run.

    A key that a newer version needs and an older ``.env`` lacks is appended. Only
    development reads the file: staging and production take their values from the
    real environment (or ``NAME_FILE``), so a stray development ``.env`` can never
    supply a production secret, and the test suite never depends on local keys.
    Values already in the process environment win over the file.
    """
    if profile() != "development":
        return
    dotenv = base_dir / ".env"
    if not dotenv.exists():
        # Created 0600 from the start: the keys are never readable by others.
        descriptor = os.open(dotenv, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(
                "# Written by Slotpay in development: local keys only.\n"
                "# Never copy these to staging or production.\n"
            )
    environ.Env.read_env(str(dotenv), overwrite=False)
    text = dotenv.read_text(encoding="utf-8")
    defined = {line.split("=", 1)[0].strip() for line in text.splitlines() if "=" in line}
    missing = {
        key: value
        for key, value in generated_development_values().items()
        if key not in defined and key not in os.environ
    }
    if missing:
        with dotenv.open("a", encoding="utf-8") as handle:
            handle.writelines(f"{key}={value}\n" for key, value in missing.items())
        os.environ.update(missing)
