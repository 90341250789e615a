"""Starting ``manage.py`` in another process, with an environment built from scratch.

The settings are read once per process, so each profile (and each missing or
malformed variable) needs a process of its own. The environment holds PATH, HOME
and what the test passes, never the developer's shell: ENVIRONMENT is always
explicit, so no run can fall back to development and write a ``.env`` here.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet
from psycopg import sql

BASE_DIR = Path(__file__).resolve().parents[2]
PROFILE_DATABASE = "slotpay_cfg"
# The secrets (each may also be given as a file, NAME_FILE), then the plain settings.
SECRET_VARIABLES = (
    "SECRET_KEY",
    "FIELD_ENCRYPTION_KEY",
    "BLIND_INDEX_KEY",
    "AUDIT_CHECKPOINT_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "STRIPE_API_KEY",
    "STRIPE_WEBHOOK_SECRETS",
    "CALENDLY_API_TOKEN",
    "CALENDLY_WEBHOOK_SIGNING_KEYS",
    "STRIPE_WEBHOOK_PATH_TOKEN",
    "CALENDLY_WEBHOOK_PATH_TOKEN",
)
REQUIRED_VARIABLES = (*SECRET_VARIABLES, "ALLOWED_HOSTS", "SITE_URL")
# The keys dated for the 90-day rotation (config/settings.py ROTATED_KEYS).
ROTATED_KEYS = (
    "SECRET_KEY",
    "FIELD_ENCRYPTION_KEY",
    "BLIND_INDEX_KEY",
    "AUDIT_CHECKPOINT_KEY",
    "STRIPE_API_KEY",
    "STRIPE_WEBHOOK_SECRETS",
    "CALENDLY_API_TOKEN",
    "CALENDLY_WEBHOOK_SIGNING_KEYS",
)

Manage = Callable[..., subprocess.CompletedProcess[str]]


def production_values(environment: str = "production") -> dict[str, str]:
    """Every variable staging and production require, with fresh keys each time, each
    dated today (an undated key is slotpay.W005 in production)."""
    mode = "live" if environment == "production" else "test"
    today = datetime.now(UTC).date().isoformat()
    return {f"{name}_CREATED": today for name in ROTATED_KEYS} | {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALERT_EMAILS": "oncall@slotpay.example",
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "BLIND_INDEX_KEY": secrets.token_urlsafe(32),
        "AUDIT_CHECKPOINT_KEY": secrets.token_urlsafe(32),
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{PROFILE_DATABASE}",
        "REDIS_URL": "redis://127.0.0.1:6379/6",
        # Built at run time: nothing resembling a live key sits in the source.
        "STRIPE_API_KEY": f"rk_{mode}_FAKE" + secrets.token_hex(12),
        "STRIPE_WEBHOOK_SECRETS": "whsec_FAKE" + secrets.token_hex(16),
        "CALENDLY_API_TOKEN": secrets.token_urlsafe(24),
        "CALENDLY_WEBHOOK_SIGNING_KEYS": secrets.token_urlsafe(32),
        "STRIPE_WEBHOOK_PATH_TOKEN": secrets.token_urlsafe(24),
        "CALENDLY_WEBHOOK_PATH_TOKEN": secrets.token_urlsafe(24),
        "ALLOWED_HOSTS": "slotpay.example",
        "SITE_URL": "https://slotpay.example",
    }


def bare_environment(environment: str, values: dict[str, str]) -> dict[str, str]:
    """A process environment with nothing of this one's but PATH and HOME."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/nonexistent"),
        "ENVIRONMENT": environment,
        **values,
    }


def run_manage(
    *args: str, environment: str, values: dict[str, str], cwd: Path = BASE_DIR
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=cwd,
        env=bare_environment(environment, values),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def manage() -> Manage:
    return run_manage


def _services_required() -> bool:
    return os.environ.get("SLOTPAY_REQUIRE_SERVICES") == "1"


@pytest.fixture(scope="session")
def profile_database() -> str:
    """An existing, unmigrated PostgreSQL database for the staging/production runs."""
    try:
        with psycopg.connect(
            host="127.0.0.1", user="postgres", dbname="postgres", connect_timeout=2, autocommit=True
        ) as admin:
            exists = admin.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [PROFILE_DATABASE]
            ).fetchone()
            if not exists:
                # A parallel run may create it first.
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    admin.execute(
                        sql.SQL("CREATE DATABASE {}").format(sql.Identifier(PROFILE_DATABASE))
                    )
    except psycopg.OperationalError as exc:
        message = f"needs PostgreSQL on 127.0.0.1:5432 for the production profile ({exc})"
        if _services_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return PROFILE_DATABASE
