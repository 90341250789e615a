"""Staging and production start only with every secret given, and then pass ``check --deploy``;
development invents its keys once, into a private ``.env`` that no other profile reads."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from config import env as config_env
from tests.config.conftest import (
    REQUIRED_VARIABLES,
    SECRET_VARIABLES,
    production_values,
)

PRODUCTION_LIKE = ["production", "staging"]
NO_ISSUES = "System check identified no issues (0 silenced)."


@pytest.mark.parametrize("environment", PRODUCTION_LIKE)
def test_a_complete_configuration_passes_the_deployment_checks(
    manage, profile_database, environment
):
    """The database exists but is not migrated: nothing to verify the key against yet."""
    result = manage(
        "check", "--deploy", environment=environment, values=production_values(environment)
    )

    assert result.returncode == 0, result.stderr
    assert NO_ISSUES in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_the_sandbox_is_refused_in_production_by_name(manage, profile_database, environment):
    values = production_values(environment) | {"SANDBOX": "true"}

    result = manage("check", "--deploy", environment=environment, values=values)

    assert result.returncode != 0
    assert "slotpay.E008" in result.stderr
    assert f"SANDBOX is on with ENVIRONMENT={environment}" in result.stderr


SHOW_SANDBOX = """
from django.conf import settings
from django.urls import Resolver404, resolve
try:
    resolve("/sandbox/")
    mounted = True
except Resolver404:
    mounted = False
print([mounted, "sandbox" in settings.INSTALLED_APPS])
"""


@pytest.mark.parametrize(
    ("environment", "sandbox", "expected"),
    [
        ("production", "true", "[False, False]"),  # refused by the check, never mounted
        ("staging", "true", "[False, False]"),  # the same on staging
        ("staging", "false", "[False, False]"),
    ],
)
def test_the_sandbox_is_never_mounted_in_production(manage, environment, sandbox, expected):
    values = production_values(environment) | {"SANDBOX": sandbox}

    result = manage(
        "shell",
        "--no-imports",
        "-c",
        SHOW_SANDBOX,
        environment=environment,
        values=values,
    )

    assert result.stdout.strip().splitlines()[-1] == expected, result.stderr


def test_an_unreachable_database_is_a_warning_not_a_crash(manage):
    values = production_values() | {"DATABASE_URL": "postgres://postgres@127.0.0.1:1/slotpay"}

    result = manage("check", "--deploy", environment="production", values=values)

    assert result.returncode == 0, result.stderr
    assert "slotpay.W001" in result.stderr
    assert "System check identified 1 issue" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("environment", PRODUCTION_LIKE)
@pytest.mark.parametrize("name", REQUIRED_VARIABLES)
def test_a_missing_variable_stops_start_up_naming_it(manage, environment, name):
    values = production_values(environment)
    del values[name]

    result = manage("check", "--deploy", environment=environment, values=values)

    assert result.returncode != 0
    assert "ConfigurationError" in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert f"{name} is required when ENVIRONMENT={environment}" in last_line


@pytest.mark.parametrize("name", REQUIRED_VARIABLES)
def test_a_blank_variable_counts_as_missing(manage, name):
    """REDIS_URL=" " once meant "no broker": tasks silently ran in memory in production."""
    values = production_values() | {name: "  "}

    result = manage("check", "--deploy", environment="production", values=values)

    assert result.returncode != 0
    assert f"{name} is required when ENVIRONMENT=production" in result.stderr


SHOW_SECRETS = """
import json
from django.conf import settings
print(json.dumps({
    "SECRET_KEY": settings.SECRET_KEY,
    "FIELD_ENCRYPTION_KEY": settings.FIELD_ENCRYPTION_KEY,
    "BLIND_INDEX_KEY": settings.BLIND_INDEX_KEY,
    "DATABASE": [settings.DATABASES["default"][k] for k in ("ENGINE", "HOST", "PORT", "NAME")],
    "REDIS_URL": settings.REDIS_URL,
    "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    "STRIPE_API_KEY": settings.STRIPE_API_KEY,
    "STRIPE_WEBHOOK_SECRETS": settings.STRIPE_WEBHOOK_SECRETS,
    "CALENDLY_API_TOKEN": settings.CALENDLY_API_TOKEN,
    "CALENDLY_WEBHOOK_SIGNING_KEYS": settings.CALENDLY_WEBHOOK_SIGNING_KEYS,
}))
"""


@pytest.mark.parametrize("environment", PRODUCTION_LIKE)
def test_secrets_are_read_from_name_file(manage, tmp_path, environment):
    values = production_values(environment)
    old_key, new_key = Fernet.generate_key().decode(), values["FIELD_ENCRYPTION_KEY"]
    values["FIELD_ENCRYPTION_KEY"] = f"{new_key},{old_key}"
    for name in SECRET_VARIABLES:
        secret_file = tmp_path / name.lower()
        # As container secrets often are: with a trailing newline.
        secret_file.write_text(values.pop(name) + "\n", encoding="utf-8")
        secret_file.chmod(0o400)
        values[f"{name}_FILE"] = str(secret_file)

    result = manage(
        "shell", "--no-imports", "-c", SHOW_SECRETS, environment=environment, values=values
    )

    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    files = {name: (tmp_path / name.lower()).read_text().strip() for name in SECRET_VARIABLES}
    assert shown == {
        "SECRET_KEY": files["SECRET_KEY"],
        "FIELD_ENCRYPTION_KEY": [new_key, old_key],
        "BLIND_INDEX_KEY": files["BLIND_INDEX_KEY"],
        "DATABASE": ["django.db.backends.postgresql", "127.0.0.1", 5432, "slotpay_cfg"],
        "REDIS_URL": "redis://127.0.0.1:6379/6",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/6",
        "STRIPE_API_KEY": files["STRIPE_API_KEY"],
        "STRIPE_WEBHOOK_SECRETS": [files["STRIPE_WEBHOOK_SECRETS"]],
        "CALENDLY_API_TOKEN": files["CALENDLY_API_TOKEN"],
        "CALENDLY_WEBHOOK_SIGNING_KEYS": [files["CALENDLY_WEBHOOK_SIGNING_KEYS"]],
    }


@pytest.mark.parametrize("name", SECRET_VARIABLES)
def test_name_and_name_file_together_are_refused(manage, tmp_path, name):
    """Checked before the profile is looked at: production stands for both."""
    values = production_values()
    secret_file = tmp_path / "secret"
    secret_file.write_text(values[name], encoding="utf-8")
    values[f"{name}_FILE"] = str(secret_file)

    result = manage("check", "--deploy", environment="production", values=values)

    assert result.returncode != 0
    assert f"Set {name} or {name}_FILE, not both." in result.stderr


# --- .env: development only ------------------------------------------------------------

GENERATED = tuple(config_env.generated_development_values())


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """load_dotenv() exports what it reads: give it none of ours, drop what it adds."""
    saved = dict(os.environ)
    for name in GENERATED:
        monkeypatch.delenv(name, raising=False)
    yield
    os.environ.clear()
    os.environ.update(saved)


def _dotenv_values(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    pairs = (line.split("=", 1) for line in lines if line and not line.startswith("#"))
    return dict(pairs)


@pytest.mark.parametrize("environment", ["development", None])
def test_development_writes_a_private_env_with_fresh_keys(
    clean_environ, monkeypatch, tmp_path, environment
):
    if environment is None:
        monkeypatch.delenv("ENVIRONMENT")  # the default profile is development
    else:
        monkeypatch.setenv("ENVIRONMENT", environment)
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()

    config_env.load_dotenv(first)
    exported = {name: os.environ.pop(name) for name in GENERATED}
    config_env.load_dotenv(second)

    dotenv = first / ".env"
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600
    values = _dotenv_values(dotenv)
    assert values == exported
    assert len(values["SECRET_KEY"]) >= 50
    assert len(values["BLIND_INDEX_KEY"]) >= 32
    Fernet(values["FIELD_ENCRYPTION_KEY"])  # a usable key, or this raises
    others = _dotenv_values(second / ".env")
    assert all(others[name] != values[name] for name in GENERATED)


def test_an_existing_env_is_read_and_only_completed(clean_environ, monkeypatch, tmp_path):
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.setenv("BLIND_INDEX_KEY", "from-the-real-environment")
    dotenv = tmp_path / ".env"
    content = "\n".join(
        [
            "SECRET_KEY=from-the-file",  # pragma: allowlist secret
            "BLIND_INDEX_KEY=also-from-the-file\n",  # pragma: allowlist secret
        ]
    )
    dotenv.write_text(content, encoding="utf-8")

    config_env.load_dotenv(tmp_path)

    text = dotenv.read_text(encoding="utf-8")
    assert text.startswith(content)  # nothing there is changed
    added = _dotenv_values(dotenv)
    assert os.environ["SECRET_KEY"] == "from-the-file"  # pragma: allowlist secret
    assert os.environ["BLIND_INDEX_KEY"] == "from-the-real-environment"  # the process wins
    # Keys a newer version needs are appended, never one the process already has.
    assert set(added) == set(GENERATED)
    assert added["BLIND_INDEX_KEY"] == "also-from-the-file"  # pragma: allowlist secret
    assert os.environ["FIELD_ENCRYPTION_KEY"] == added["FIELD_ENCRYPTION_KEY"]


@pytest.mark.parametrize("environment", ["test", "staging", "production"])
def test_other_profiles_neither_read_nor_write_env(
    clean_environ, monkeypatch, tmp_path, environment
):
    monkeypatch.setenv("ENVIRONMENT", environment)
    dotenv = tmp_path / ".env"
    dotenv.write_text("SECRET_KEY=a-development-key-that-must-stay-there\n", encoding="utf-8")

    config_env.load_dotenv(tmp_path)

    assert "SECRET_KEY" not in os.environ
    assert list(tmp_path.iterdir()) == [dotenv]

    dotenv.unlink()
    config_env.load_dotenv(tmp_path)

    assert list(tmp_path.iterdir()) == []
