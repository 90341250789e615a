"""Known vulnerabilities in the locked packages, or a plain "could not check".

``make audit-deps`` runs this with the lock file. pip-audit reads the pins and
hashes from it (``--disable-pip``: nothing is installed or resolved) and asks its
vulnerability service about each (``PIP_AUDIT_SERVICE``: ``pypi``, the default, or
``osv``). Left to itself, pip-audit prints "No known vulnerabilities found" when the
service answered for no package at all (each one skipped as "not found"), which reads
like a pass; so this reads its JSON report and fails unless every package was checked.
``PIP_AUDIT`` names another pip-audit executable (default: the one beside this Python).

Exit status: 0 every package checked and none has a known vulnerability; 1 some do
(listed); 2 could not check (the service is unreachable, or some packages could not be
looked up: named); 3 pip-audit failed otherwise (its last line is shown).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

UNREACHABLE = "could not check: the vulnerability service is unreachable"
# How requests and urllib3 name a service that cannot be reached (pip-audit's traceback).
NETWORK_ERRORS = re.compile(
    r"ConnectionError|ConnectTimeout|ReadTimeout|NameResolutionError|Max retries exceeded|"
    r"Temporary failure in name resolution|Connection refused|SSLError|ProxyError"
)


def say(text: str) -> None:
    sys.stdout.write(text + "\n")


def main(lock: str) -> int:
    service = os.environ.get("PIP_AUDIT_SERVICE", "pypi")
    pip_audit = os.environ.get("PIP_AUDIT") or Path(sys.executable).with_name("pip-audit")
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        result = subprocess.run(  # noqa: S603 (our own tool, fixed arguments)
            [
                str(pip_audit),
                "--requirement",
                lock,
                "--require-hashes",
                "--disable-pip",
                "--vulnerability-service",
                service,
                "--progress-spinner",
                "off",
                "--format",
                "json",
                "--output",
                str(report),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        text = report.read_text(encoding="utf-8") if report.exists() else ""
    if not text:
        # No report: pip-audit stopped on an error; its last line says which.
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit status {result.returncode}"
        if NETWORK_ERRORS.search(result.stderr):
            say(f"{UNREACHABLE} ({service}): {last}")
            return 2
        say(f"pip-audit failed: {last}")
        return 3
    dependencies = json.loads(text)["dependencies"]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    skipped = [d for d in dependencies if "skip_reason" in d]
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed version"
            say(f"{dependency['name']} {dependency['version']}: {vuln['id']} (fixed in {fixed})")
    checked = len(dependencies) - len(skipped)
    if skipped and not checked:
        say(
            f"{UNREACHABLE} ({service}): none of the {len(dependencies)} locked packages "
            f"could be looked up, e.g. {skipped[0]['skip_reason']}"
        )
        return 2
    if vulnerable:
        say(f"{len(vulnerable)} of {len(dependencies)} locked packages have known vulnerabilities")
        return 1
    if skipped:
        names = ", ".join(d["name"] for d in skipped)
        say(f"could not check {len(skipped)} of {len(dependencies)} packages ({service}): {names}")
        return 2
    say(f"no known vulnerabilities in the {len(dependencies)} locked packages ({service})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "requirements.lock"))
