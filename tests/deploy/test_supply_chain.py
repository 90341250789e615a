"""The lock covers pyproject.toml, hashed; make audit-deps never passes unchecked."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.lock"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of every requirement in the lock."""
    text = LOCK.read_text(encoding="utf-8").replace("\\\n", " ")
    locked = {}
    for line in text.splitlines():
        found = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)\s*(.*)$", line)
        if found:
            name, version, rest = found.groups()
            locked[_normalise(name)] = (version, re.findall(r"--hash=sha256:([0-9a-f]{64})", rest))
    return locked


def test_every_pin_of_pyproject_is_locked_at_its_version():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    locked = _locked()
    stale = []
    for pin in pins:
        name, version = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)$", pin).groups()
        if locked.get(_normalise(name), ("",))[0] != version:
            stale.append(f"{pin} (locked: {locked.get(_normalise(name), ('none',))[0]})")
    assert not stale, f"requirements.lock is out of date, run `make lock`: {stale}"


def test_every_locked_requirement_is_pinned_with_hashes():
    locked = _locked()
    # The build backend is locked too: the project is built with --no-build-isolation.
    assert {"setuptools", "pip", "django", "pip-audit", "bandit"} <= set(locked)
    assert all(hashes for _version, hashes in locked.values()), [
        name for name, (_version, hashes) in locked.items() if not hashes
    ]


def _audit(tmp_path: Path, *, report: dict | None, stderr: str = "", status: int = 0):
    """.ci/audit_deps.py with a pip-audit that writes ``report`` and exits ``status``."""
    fake = tmp_path / "pip-audit"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "args = sys.argv[1:]\n"
        f"report = {json.dumps(json.dumps(report)) if report is not None else None}\n"
        "if report is not None:\n"
        "    open(args[args.index('--output') + 1], 'w').write(report)\n"
        f"sys.stderr.write({stderr!r})\n"
        f"sys.exit({status})\n",
        encoding="utf-8",
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return subprocess.run(
        [sys.executable, str(REPO / ".ci" / "audit_deps.py"), str(LOCK)],
        capture_output=True,
        text=True,
        env={"PIP_AUDIT": str(fake), "PATH": "/usr/bin:/bin"},
        check=False,
    )


def _dependency(name: str, vulns: list | None = None) -> dict:
    return {"name": name, "version": "1.0", "vulns": vulns or []}


def test_audit_passes_only_when_every_package_was_checked(tmp_path):
    report = {"dependencies": [_dependency("django"), _dependency("celery")], "fixes": []}
    result = _audit(tmp_path, report=report)
    assert result.returncode == 0
    assert "no known vulnerabilities in the 2 locked packages" in result.stdout


def test_audit_fails_and_lists_known_vulnerabilities(tmp_path):
    vuln = {"id": "PYSEC-2099-1", "fix_versions": ["1.1"], "aliases": [], "description": ""}
    report = {"dependencies": [_dependency("django", [vuln]), _dependency("celery")]}
    result = _audit(tmp_path, report=report, status=1)
    assert result.returncode == 1
    assert "django 1.0: PYSEC-2099-1 (fixed in 1.1)" in result.stdout


@pytest.mark.parametrize("checked", [0, 1])
def test_audit_says_it_could_not_check_when_packages_were_skipped(tmp_path, checked):
    # What pip-audit reports, exit status 0 and "No known vulnerabilities found", when
    # the PyPI JSON API answers 404 for everything (these machines).
    skipped = [
        {"name": name, "skip_reason": f"Dependency not found on PyPI: {name}"}
        for name in ("amqp", "django")
    ]
    report = {"dependencies": [_dependency("celery")] * checked + skipped, "fixes": []}
    result = _audit(tmp_path, report=report, status=0)
    assert result.returncode == 2
    if checked:
        assert "could not check 2 of 3 packages (pypi): amqp, django" in result.stdout
    else:
        assert "could not check: the vulnerability service is unreachable" in result.stdout


def test_audit_says_the_service_is_unreachable_when_pip_audit_cannot_connect(tmp_path):
    error = "requests.exceptions.ConnectionError: Max retries exceeded with url: /v1/query\n"
    result = _audit(tmp_path, report=None, stderr=error, status=1)
    assert result.returncode == 2
    assert result.stdout.startswith("could not check: the vulnerability service is unreachable")


def test_audit_reports_other_pip_audit_failures_as_such(tmp_path):
    result = _audit(tmp_path, report=None, stderr="invalid requirements input\n", status=1)
    assert result.returncode == 3
    assert result.stdout == "pip-audit failed: invalid requirements input\n"
