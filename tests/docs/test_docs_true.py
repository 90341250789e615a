"""The documents in docs/ name only what exists, and say the retention the code applies.

Every ``docs/*.md`` is read with these conventions (docs/README.md states them for
writers):

- ``tests/<path>.py::test_name`` (a ``[parameters]`` suffix allowed) names a test: the
  file exists and defines that function, at module level or in a class.
- A backticked span that is a path (``core/alerts.py``, ``deploy/``, ``../README.md``)
  exists: a span with a slash whose first part is one of the repository's top-level
  entries or which ends in a file extension, or a bare root file name (``Makefile``).
  Relative Markdown link targets exist too. Paths are read from the repository root,
  ``../`` ones from docs/.
- ``manage.py <command>`` (anywhere, code blocks included) is one of Django's commands
  here, and a backticked ``make <target>`` a target of the Makefile.
- A backticked span that is all UPPER_CASE (``SECRET_KEY``) is a Django setting or an
  environment variable config/settings.py or config/env.py reads (its ``<NAME>_FILE``
  and, for the keys it dates, ``<NAME>_CREATED`` included). SQL and HTTP verbs are not
  settings.
- A backticked span that starts with ``/`` (optionally after an HTTP method, or
  ``https://<your host>``) is one of our URLs: ``django.urls.resolve`` finds a view for
  it, ``<NAME>`` of a setting replaced by its value and other ``<placeholders>`` by a
  sample id. Other hosts' URLs are written with their host and are not checked.
- The retention table of docs/gdpr-records.md (the table whose header has "rule" and
  "period") lists exactly the rules of ``audit.purges.rules()``, each with its period;
  wherever a document says "rule `name`", the rule exists, and in a table cell the cell
  also says its period.
- Every row of docs/requirements-matrix.md names its proof: a test or a document.
"""

from __future__ import annotations

import ast
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from functools import cache
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import get_commands
from django.urls import Resolver404, resolve

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
DOCUMENTS = sorted(DOCS.glob("*.md"))

TEST_REFERENCE = re.compile(r"\btests/[\w/]+\.py::(\w+)(?:\[[^\]\s]*\])?")
TEST_FILE = re.compile(r"\b(tests/[\w/]+\.py)::")
MANAGE_COMMAND = re.compile(r"manage\.py\s+([a-z][a-z0-9_]*)")
INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
UPPER_NAME = re.compile(r"[A-Z][A-Z0-9_]*[A-Z0-9]")
PATH = re.compile(r"(?:\.\./)?[\w.-]+(?:/[\w.-]+)*/?")
EXTENSIONS = (
    ".py",
    ".md",
    ".html",
    ".txt",
    ".toml",
    ".json",
    ".conf",
    ".service",
    ".lock",
    ".cfg",
    ".ini",
    ".yml",
    ".yaml",
    ".sh",
    ".example",
)
ROOT_FILES = ("Makefile", "manage.py", "pyproject.toml", "README.md", ".env.example")
NOT_SETTINGS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"} | {
    "SELECT",
    "INSERT",
    "UPDATE",
    "TRUNCATE",
    "DROP",
}
URL = re.compile(r"(?:(?:GET|POST|PUT|PATCH|DELETE|HEAD)\s+)?(?:https://<your host>)?(/[^\s`]*)")
PLACEHOLDER = re.compile(r"<([^<>/]+)>")
RULE_REFERENCE = re.compile(r"\brules?\s+((?:`[a-z_][\w.]*`(?:,\s*|\s+and\s+)?)+)")
PERIOD_WORDS = re.compile(r"(\d+)\s*(year|day|hour|minute)s?\b")
UNITS = {
    "year": timedelta(days=365),
    "day": timedelta(days=1),
    "hour": timedelta(hours=1),
    "minute": timedelta(minutes=1),
}


def _prose(text: str) -> str:
    """The text without fenced code blocks (Mermaid diagrams, shell sessions)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def _lines(document: Path) -> Iterator[tuple[int, str]]:
    yield from enumerate(document.read_text(encoding="utf-8").splitlines(), start=1)


def _prose_lines(document: Path) -> Iterator[tuple[int, str]]:
    fenced = False
    for number, line in _lines(document):
        if line.startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def _spans(document: Path) -> Iterator[tuple[str, str]]:
    """Every inline code span outside code blocks, with where it is."""
    for number, line in _prose_lines(document):
        for span in INLINE_CODE.findall(line):
            yield f"{document.name}:{number}", span.strip()


@cache
def _defined_tests(path: str) -> frozenset[str]:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    return frozenset(
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    )


def _missing_tests(text: str) -> list[str]:
    missing = []
    for match in TEST_REFERENCE.finditer(text):
        path = TEST_FILE.match(match.group(0))
        assert path is not None
        if not (ROOT / path.group(1)).is_file():
            missing.append(f"{match.group(0)} (no file)")
        elif match.group(1) not in _defined_tests(path.group(1)):
            missing.append(f"{match.group(0)} (no such test)")
    return missing


def _is_path(span: str) -> bool:
    if not PATH.fullmatch(span) or span.startswith("/"):
        return False
    if "/" not in span.rstrip("/"):
        return span in ROOT_FILES or (span.endswith("/") and (ROOT / span).is_dir())
    first = span.removeprefix("../").split("/", 1)[0]
    return span.endswith(EXTENSIONS) or (ROOT / first).exists()


def _path_exists(span: str, *, base: Path = ROOT) -> bool:
    if span.startswith("../"):
        return (DOCS / span).resolve().exists()
    return (base / span).exists()


# The calls through which config/settings.py and config/env.py read a variable: the
# name is their first argument (env.str("X"), read_secret("X"), os.environ.get("X")).
READERS = {"str", "int", "bool", "float", "list", "get", "_secret", "read_secret", "networks"}
SECRET_READERS = {"_secret", "read_secret"}


@cache
def _environment_names() -> frozenset[str]:
    """Variables config/settings.py and config/env.py read, with ``<NAME>_FILE`` for the
    secrets and ``<NAME>_CREATED`` for the dated keys."""
    names: set[str] = set()
    secrets: set[str] = set()
    for module in ("config/settings.py", "config/env.py"):
        source = (ROOT / module).read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source)):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            reader = getattr(node.func, "id", getattr(node.func, "attr", ""))
            first = node.args[0]
            if (
                reader in READERS
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and UPPER_NAME.fullmatch(first.value)
            ):
                names.add(first.value)
                if reader in SECRET_READERS:
                    secrets.add(first.value)
    names |= {f"{name}_FILE" for name in secrets}
    names |= {f"{name}_CREATED" for name in getattr(settings, "ROTATED_KEYS", ())}
    return frozenset(names)


def _is_setting(name: str) -> bool:
    return hasattr(settings, name) or name in _environment_names()


def _url_resolves(path: str) -> bool:
    path = path.split("?", 1)[0].split("#", 1)[0]
    named = {
        name: str(getattr(settings, name))
        for name in PLACEHOLDER.findall(path)
        if UPPER_NAME.fullmatch(name) and hasattr(settings, name)
    }
    for name, value in named.items():
        path = path.replace(f"<{name}>", value)
    for sample in ("1", str(uuid.uuid4()), "sample-slug"):
        try:
            resolve(PLACEHOLDER.sub(sample, path))
        except Resolver404:
            continue
        return True
    return False


def _period(text: str) -> timedelta | None:
    """``1 year (365 days)`` -> 365 days: the exact form in brackets wins."""
    exact = re.search(r"\(([^)]*)\)", text)
    for candidate in ((exact.group(1),) if exact else ()) + (text,):
        found = PERIOD_WORDS.findall(candidate)
        if found:
            return sum((int(n) * UNITS[unit] for n, unit in found), timedelta())
    return None


def _says_period(cell: str, period: timedelta) -> bool:
    """Whether ``cell`` states ``period`` in words (any unit that divides it)."""
    return any(int(n) * UNITS[unit] == period for n, unit in PERIOD_WORDS.findall(cell))


def _tables(document: Path) -> list[list[tuple[int, list[str]]]]:
    """Each table (a run of lines starting with ``|``) as (line, cells) rows, its
    header first and its separator row left out."""
    tables: list[list[tuple[int, list[str]]]] = []
    previous = -1
    for number, line in _prose_lines(document):
        stripped = line.strip()
        if not stripped.startswith("|"):
            continue
        if number != previous + 1:
            tables.append([])
        previous = number
        if not re.fullmatch(r"\|[\s|:-]+\|", stripped):
            tables[-1].append((number, [cell.strip() for cell in stripped.strip("|").split("|")]))
    return tables


def _rules() -> dict[str, timedelta]:
    from audit import purges

    return {rule.name: rule.period for rule in purges.rules()}


@pytest.fixture(scope="module")
def rules() -> dict[str, timedelta]:
    return _rules()


def test_there_are_documents() -> None:
    names = {document.name for document in DOCUMENTS}
    assert {
        "security-policy.md",
        "incident-response.md",
        "threat-model.md",
        "pci-scope.md",
        "gdpr-records.md",
        "data-flow.md",
        "error-codes.md",
        "refund-policy-template.md",
        "requirements-matrix.md",
        "data-inventory.md",
    } <= names


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_test_named_exists(document: Path) -> None:
    assert _missing_tests(document.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_file_named_exists(document: Path) -> None:
    missing = [
        f"{where}: {span}"
        for where, span in _spans(document)
        if _is_path(span) and not _path_exists(span)
    ]
    for number, line in _prose_lines(document):
        for target in MARKDOWN_LINK.findall(line):
            if "://" in target or target.startswith(("#", "mailto:")):
                continue
            if not (DOCS / target.split("#", 1)[0]).resolve().exists():
                missing.append(f"{document.name}:{number}: link {target}")
    assert missing == []


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_command_named_exists(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    commands = {*get_commands(), "help"}
    unknown = sorted({name for name in MANAGE_COMMAND.findall(text) if name not in commands})
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([\w-]+):", makefile, flags=re.MULTILINE))
    unknown += [
        f"{where}: {span}"
        for where, span in _spans(document)
        if span.startswith("make ") and span.split()[1] not in targets
    ]
    assert unknown == []


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_setting_named_exists(document: Path) -> None:
    unknown = [
        f"{where}: {span}"
        for where, span in _spans(document)
        if UPPER_NAME.fullmatch(span) and span not in NOT_SETTINGS and not _is_setting(span)
    ]
    assert unknown == []


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_url_named_resolves(document: Path) -> None:
    unresolved = []
    for where, span in _spans(document):
        match = URL.fullmatch(span)
        if match and not _url_resolves(match.group(1)):
            unresolved.append(f"{where}: {span}")
    assert unresolved == []


def test_the_retention_table_is_the_rules_in_code(rules: dict[str, timedelta]) -> None:
    document = DOCS / "gdpr-records.md"
    table = next(
        (
            rows
            for rows in _tables(document)
            if {"rule", "period"} <= {cell.lower() for cell in rows[0][1]}
        ),
        None,
    )
    assert table is not None, "gdpr-records.md has no table with 'rule' and 'period' columns"
    header = [cell.lower() for cell in table[0][1]]
    rule_at, period_at = header.index("rule"), header.index("period")
    documented: dict[str, timedelta | None] = {}
    for _, cells in table[1:]:
        name = cells[rule_at].strip("`")
        documented[name] = _period(cells[period_at])
    assert documented == rules


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_rule_named_exists_with_its_period(
    document: Path, rules: dict[str, timedelta]
) -> None:
    wrong = []
    for number, line in _prose_lines(document):
        in_table = line.strip().startswith("|")
        for cell in line.strip().strip("|").split("|") if in_table else [line]:
            for listed in RULE_REFERENCE.findall(cell):
                for name in re.findall(r"`([^`]+)`", listed):
                    if name not in rules:
                        wrong.append(f"{document.name}:{number}: no rule {name}")
                    elif in_table and not _says_period(cell, rules[name]):
                        wrong.append(f"{document.name}:{number}: {name} is kept {rules[name]}")
    assert wrong == []


def test_every_requirement_names_its_proof() -> None:
    document = DOCS / "requirements-matrix.md"
    rows = [row for table in _tables(document) for row in table[1:]]
    assert len(rows) >= 30
    unproved = [
        f"requirements-matrix.md:{number}: {cells[0]}"
        for number, cells in rows
        if not any(
            TEST_REFERENCE.search(cell)
            or re.search(r"\.md\b", cell)
            or re.fullmatch(r"open: issue \d+", cell)
            for cell in cells[3:]
        )
    ]
    assert unproved == []


def _column(document: Path, header: str) -> dict[str, list[str]]:
    """The first table whose first column is ``header``: its first cells (unquoted)
    mapped to their rows."""
    for rows in _tables(document):
        if rows[0][1][0].lower() == header:
            return {cells[0].strip("`"): cells for _, cells in rows[1:]}
    raise AssertionError(f"{document.name} has no table headed {header!r}")


def _python_sources(*folders: str) -> Iterator[Path]:
    for folder in folders:
        yield from (ROOT / folder).rglob("*.py")


def test_the_api_error_codes_are_the_apis() -> None:
    from bookings.api import ERROR_CODES

    documented = _column(DOCS / "error-codes.md", "code")
    assert set(documented) == set(ERROR_CODES)
    for code, meaning in ERROR_CODES.items():
        assert documented[code][1] == meaning.split(":", 1)[0], code


def test_the_webhook_rejection_reasons_are_the_endpoints() -> None:
    reasons: set[str] = set()
    for source in _python_sources("webhooks", "payments", "bookings"):
        text = source.read_text(encoding="utf-8")
        reasons |= set(re.findall(r"\bRejected\(\s*\"(\w+)\"", text))
        for call in re.findall(r"WebhookSignatureInvalid\((.*)\)", text):
            reasons |= set(re.findall(r"\"(\w+)\"", call))
    assert set(_column(DOCS / "error-codes.md", "reason")) == reasons


def test_the_system_checks_are_the_codes() -> None:
    ids: set[str] = set()
    for source in _python_sources(
        "config", "core", "accounts", "audit", "payments", "bookings", "webhooks"
    ):
        ids |= set(re.findall(r"\bid=\"(\w+\.[EWI]\d{3})\"", source.read_text(encoding="utf-8")))
    assert set(_column(DOCS / "error-codes.md", "check")) == ids


def test_the_webhook_events_are_the_handlers() -> None:
    from webhooks.registry import registry

    documented = _column(DOCS / "security-policy.md", "provider")
    for provider in ("stripe", "calendly"):
        events = set(re.findall(r"`([\w.]+)`", documented[provider][1]))
        assert events == set(registry.event_types(provider)), provider
