"""Reading configuration from the environment, failing closed.

Every secret may be given directly (``NAME``) or as a path (``NAME_FILE``), so that
container secrets and systemd credentials work without copying them into the
environment. In staging and production a missing secret stops start-up with a
message naming it; only the development and test profiles invent values.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

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


def generated_development_values() -> dict[str, str]:
    """Fresh keys for a first run in development; never used elsewhere."""
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "BLIND_INDEX_KEY": secrets.token_urlsafe(32),
    }


def load_dotenv(base_dir: Path) -> None:
    """In development, read ``.env``, writing it with fresh keys on the first run.

    Only development reads the file: staging and production take their values from
    the real environment (or ``NAME_FILE``), so a stray development ``.env`` can never
    supply a production secret, and the test suite never depends on local keys.
    Values already in the process environment win over the file.
    """
    if profile() != "development":
        return
    dotenv = base_dir / ".env"
    if not dotenv.exists():
        lines = [
            "# Written by Slotpay on its first run in development: local keys only.",
            "# Never copy these to staging or production.",
        ]
        lines += [f"{key}={value}" for key, value in generated_development_values().items()]
        # Created 0600 from the start: the keys are never readable by others.
        descriptor = os.open(dotenv, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
    environ.Env.read_env(str(dotenv), overwrite=False)
