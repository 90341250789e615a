"""``make run`` on a fresh checkout: the README's first command.

The steps of the Makefile's ``run`` target, in a copy of the source with no ``.env``
and no database (the development profile: SQLite, the sandbox in a file of its own),
then the server answering the pages a newcomer opens first. The suite's own database
is PostgreSQL, where the sandbox shares the default database: a post_migrate handler
that reached for the sandbox file's missing auth tables broke only this path.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from bench.stack import free_port, port_open, wait_until
from tests.config.conftest import bare_environment, run_manage

REPO = Path(__file__).resolve().parent.parent
NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "__pycache__",
    "*.sqlite3",
    ".env",
    "staticfiles",
    "node_modules",
    ".*_cache",
    ".hypothesis",
)

pytestmark = pytest.mark.slow


def _run_target_steps() -> list[list[str]]:
    """The ``run`` target's commands, read from the Makefile (so the test follows it)."""
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    body = re.search(r"^run: .*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert body, "the Makefile has no run target"
    steps = [line.strip().split() for line in body.group(1).splitlines()]
    assert all(step[0] == "$(BIN)/python" and step[1] == "manage.py" for step in steps), steps
    return [step[1:] for step in steps]


def test_make_run_works_on_a_fresh_checkout(tmp_path: Path) -> None:
    source = tmp_path / "slotpay"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    port = free_port()
    values = {"SITE_URL": f"http://127.0.0.1:{port}"}  # and nothing else: a new machine
    *setup, serve = _run_target_steps()
    assert serve[:2] == ["manage.py", "runserver"]

    for step in setup:
        done = run_manage(*step[1:], environment="development", values=values, cwd=source)
        assert done.returncode == 0, f"{' '.join(step)} failed:\n{done.stdout}\n{done.stderr}"
    assert "client@slotpay.localhost" in done.stdout  # seed_demo printed the sign-ins
    assert (source / ".env").stat().st_mode & 0o077 == 0
    assert (source / "db.sqlite3").exists()
    assert (source / "db-sandbox.sqlite3").exists()

    log = tmp_path / "runserver.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=source,
            env=bare_environment("development", values),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: port_open(port) or server.poll() is not None, timeout=60)
        assert server.poll() is None, f"runserver stopped:\n{log.read_text(errors='replace')}"
        for page in ("/", "/builders/", "/accounts/login/", "/admin/login/"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{page}", timeout=30) as answer:
                assert answer.status == 200, page
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
