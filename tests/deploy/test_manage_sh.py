"""deploy/manage.sh runs manage.py with the units' settings and credentials, and only
those: the operator's own environment does not leak in, and no copy is left behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"

PRINT_SETTINGS = (
    "import os; from django.conf import settings; "
    "print(settings.ENVIRONMENT, settings.SECRET_KEY, settings.DEFAULT_FROM_EMAIL, "
    "settings.TRUSTED_PROXY_COUNT, 'SECRET_KEY' in os.environ, "
    "os.environ['SECRET_KEY_FILE'], sep='|')"
)


@pytest.mark.skipif(os.geteuid() != 0, reason="deploy/manage.sh runs as root (CI does)")
def test_manage_sh_gives_manage_py_the_units_credentials(tmp_path):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    dropin = (DEPLOY / "systemd" / "slotpay-.service.d" / "10-slotpay.conf").read_text()
    for name in (line.split(":")[0] for line in dropin.split("LoadCredential=")[1:]):
        (credentials / name).write_text(f"{name}-value-{'x' * 50}\n")
    (credentials / "database_url").write_text("postgres://slotpay@127.0.0.1:5432/slotpay\n")
    (credentials / "redis_url").write_text("redis://127.0.0.1:6379/0\n")
    (credentials / "email_url").write_text("smtp://127.0.0.1:25\n")
    (credentials / "field_encryption_key").write_text(Fernet.generate_key().decode() + "\n")
    (tmp_path / "10-slotpay.conf").write_text(
        dropin.replace("/etc/slotpay/credentials/", f"{credentials}/")
    )
    (tmp_path / "slotpay.env").write_text(
        (DEPLOY / "slotpay.env").read_text()
        + "DEFAULT_FROM_EMAIL=Slot'pay <no-reply@slotpay.example>\n"
    )
    result = subprocess.run(
        [str(DEPLOY / "manage.sh"), "shell", "-c", PRINT_SETTINGS],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={
            "PATH": os.environ["PATH"],
            "SLOTPAY_USER": "root",
            "SLOTPAY_HOME": str(REPO),
            "SLOTPAY_ENV_FILE": str(tmp_path / "slotpay.env"),
            "SLOTPAY_UNIT_DROPIN": str(tmp_path / "10-slotpay.conf"),
            # The operator's shell: must not reach manage.py ("not both" would stop it).
            "SECRET_KEY": "from-the-operators-shell",  # pragma: allowlist secret
            "ENVIRONMENT": "development",
        },
    )
    assert result.returncode == 0, result.stderr
    environment, secret_key, sender, proxies, leaked, path = (
        result.stdout.strip().splitlines()[-1].split("|")
    )
    assert (environment, sender, proxies, leaked) == (
        "production",
        "Slot'pay <no-reply@slotpay.example>",
        "1",
        "False",
    )
    assert secret_key == f"secret_key-value-{'x' * 50}"
    assert path.startswith("/run/slotpay-manage.")
    assert path.endswith("/secret_key")
    assert not Path(path).exists()
