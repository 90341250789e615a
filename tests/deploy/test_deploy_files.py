"""deploy/ stays true to the settings: every production secret is a credential, and
the proxy sets the headers TRUSTED_PROXY_COUNT and SECURE_PROXY_SSL_HEADER read."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def _production_secrets() -> set[str]:
    """Every value config/settings.py reads with read_secret and requires in production."""
    settings = (REPO / "config" / "settings.py").read_text(encoding="utf-8")
    names = set(re.findall(r'\b_secret\(\s*"([A-Z_]+)"', settings))
    names |= set(re.findall(r'read_secret\(\s*"([A-Z_]+)",\s*required=PRODUCTION_LIKE', settings))
    return names


def test_every_production_secret_is_a_systemd_credential():
    shared = (DEPLOY / "systemd" / "slotpay-.service.d" / "10-slotpay.conf").read_text()
    credentials = dict(re.findall(r"^LoadCredential=([a-z_]+):(\S+)$", shared, re.M))
    variables = dict(re.findall(r"^Environment=([A-Z_]+)_FILE=%d/([a-z_]+)$", shared, re.M))
    secrets = _production_secrets()
    assert {"SECRET_KEY", "DATABASE_URL", "STRIPE_WEBHOOK_PATH_TOKEN"} <= secrets
    missing = sorted(name for name in secrets if variables.get(name) not in credentials)
    assert not missing, f"not given to the services as NAME_FILE credentials: {missing}"
    # No secret in the plain environment file.
    environment = (DEPLOY / "slotpay.env").read_text()
    assigned = set(re.findall(r"^([A-Z_]+)=", environment, re.M))
    assert not assigned & secrets


def test_every_unit_runs_with_the_shared_settings():
    units = sorted((DEPLOY / "systemd").glob("slotpay-*.service"))
    assert [u.name for u in units] == [
        "slotpay-beat.service",
        "slotpay-web.service",
        "slotpay-worker@.service",
    ]
    web = (DEPLOY / "systemd" / "slotpay-web.service").read_text()
    assert "gunicorn --config deploy/gunicorn.conf.py config.wsgi" in web


def test_the_proxy_sets_the_forwarded_headers_the_settings_trust():
    environment = (DEPLOY / "slotpay.env").read_text()
    assert re.search(r"^TRUSTED_PROXY_COUNT=1$", environment, re.M)
    nginx = (DEPLOY / "nginx.conf").read_text()
    headers = dict(re.findall(r"^\s*proxy_set_header\s+(\S+)\s+(.+);$", nginx, re.M))
    # One proxy appends the address it received from: client_ip() takes the last entry.
    assert headers["X-Forwarded-For"] == "$proxy_add_x_forwarded_for"
    # Overwritten, never passed through: SECURE_PROXY_SSL_HEADER believes it.
    assert headers["X-Forwarded-Proto"] == "$scheme"
    assert headers["Host"] == "$host"
    assert not {h for h in headers if h.startswith("X-Forwarded-")} - {
        "X-Forwarded-For",
        "X-Forwarded-Proto",
    }


def test_gunicorn_logs_paths_without_query_strings(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    config = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    assert config["workers"] == 3
    assert config["bind"] == "127.0.0.1:8000"
    assert "%(U)s" in config["access_log_format"]
    assert not re.search(r"%\((r|q)\)s", config["access_log_format"])
    monkeypatch.delenv("WEB_CONCURRENCY")
    assert 1 <= runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))["workers"] <= 12
