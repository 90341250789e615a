"""No query value reaches a log line, whichever of our pages fails.

Calendly's redirect to ``/bookings/scheduled/`` carries the invitee's name, email and
free-text answers in its query string, and the request loggers print whole paths:
Django attaches the request to ``django.request`` and ``django.security`` records,
runserver (``django.server``) and gunicorn's access log print the request line. Every
page of ours is made to fail with the demo client's data in the query, and everything
every handler writes, in both of the project's formats, is searched for it.
"""

from __future__ import annotations

import copy
import io
import logging
import logging.config
import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus, urlencode

import pytest
import requests
from django.conf import settings
from django.core.servers.basehttp import WSGIRequestHandler
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.models import User
from core.masking import redact_queries
from tests.conftest import PASSWORD

BASE_DIR = Path(__file__).resolve().parents[2]

# The demo client, as Calendly's redirect sends them (see tests/sandbox/calendly/).
NAME = "Clara Client"
EMAIL = "clara@client.example"
ANSWER = "Pricing,\nand the roadmap"
QUERY = urlencode(
    {
        "invitee_uuid": "not-a-uuid",
        "invitee_full_name": NAME,
        "invitee_email": EMAIL,
        "answer_1": ANSWER,
        "event_start_time": "not-a-time",
    }
)
# Each value raw and as a URL spells it (%20 or +, %40, %2C%0A), then the words themselves
# in any case: no encoding changes letters.
PERSONAL = [
    form
    for value in (NAME, EMAIL, ANSWER)
    for form in (value, quote(value), quote(value, safe=""), quote_plus(value))
]
WORDS = ["clara", "roadmap", "pricing"]


def _assert_nothing_personal(output: str) -> None:
    for form in PERSONAL:
        assert form not in output, form
    lowered = output.lower()
    for word in WORDS:
        assert word not in lowered, f"{word!r} in:\n{output}"


# --- Every handler's output, in either format ------------------------------------------


def _project_formatter(name: str) -> logging.Formatter:
    config = copy.deepcopy(settings.LOGGING)  # the configurator pops keys from it
    return logging.config.DictConfigurator(config).configure_formatter(config["formatters"][name])


@pytest.fixture(params=["json", "text"])
def log_output(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """Every stream handler in the logging tree (ours and any Django left) writes here;
    the project's own in the format asked for."""
    stream = io.StringIO()
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    handlers = {
        handler
        for logger in loggers
        if isinstance(logger, logging.Logger)
        for handler in logger.handlers
        if type(handler) is logging.StreamHandler
    }
    saved = [(handler, handler.setStream(stream), handler.formatter) for handler in handlers]
    for handler in handlers:
        if handler.get_name() == "console":
            handler.setFormatter(_project_formatter(request.param))
    yield stream
    for handler, old_stream, old_formatter in saved:
        handler.setStream(old_stream)
        handler.setFormatter(old_formatter)


# --- Our pages ---------------------------------------------------------------------------

# What each converter gets: a well-formed value that matches nothing.
_SAMPLES = {
    "int": "987654",
    "slug": "no-such-builder",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "str": "nothing",
    "path": "nothing",
}
# Not ours (the sandbox never runs in production), or walked through its login page only.
_SKIPPED = ("sandbox/", "admin/")


def _concrete(pattern: str) -> str:
    """A path for a route or a regex: converters and groups filled in."""
    path = re.sub(r"\(\?P<\w+>[^)]*\)", "wrong-token", pattern)
    path = re.sub(r"<(?:(\w+):)?\w+>", lambda m: _SAMPLES[m.group(1) or "str"], path)
    return path.replace("^", "").replace("$", "").replace("/?", "/")


def _walk(patterns: list, prefix: str = "") -> Iterator[str]:
    for entry in patterns:
        route = prefix + _concrete(str(entry.pattern))
        if isinstance(entry, URLResolver):
            if not route.startswith(_SKIPPED):
                yield from _walk(entry.url_patterns, route)
        elif isinstance(entry, URLPattern) and not route.startswith(_SKIPPED):
            yield "/" + route


def our_paths() -> list[str]:
    """Every path of ours; signing out last, so that the signed-in clients stay so."""
    paths = {*_walk(get_resolver().url_patterns), "/admin/login/", "/no-such-page"}
    return sorted(
        paths,
        key=lambda path: (
            path in ("/accounts/logout/", "/accounts/session/sign-out-everywhere/"),
            path,
        ),
    )


@pytest.fixture
def clients(db: None) -> dict[str, Client]:
    user = User.objects.create_user(email="signed.in@example.net", password=PASSWORD, name="Sid")
    signed_in = Client(raise_request_exception=False)
    signed_in.force_login(user)
    strict = Client(enforce_csrf_checks=True, raise_request_exception=False)
    strict.force_login(user)
    return {
        "anonymous": Client(raise_request_exception=False),
        "signed in": signed_in,
        "signed in, CSRF enforced": strict,
    }


def _fail_everywhere(clients: dict[str, Client]) -> set[int]:
    """Request every path with every method a failure can come from; the statuses seen."""
    statuses = set()
    for path in our_paths():
        url = f"{path}?{QUERY}"
        for client in clients.values():
            for method in (client.get, client.post, client.delete):
                statuses.add(method(url).status_code)
        statuses.add(clients["anonymous"].get(url, headers={"host": "evil.example"}).status_code)
    # Locked out after failed sign-ins, on both sign-in pages.
    for path in ("/accounts/login/", "/admin/login/"):
        for _ in range(settings.AXES_FAILURE_LIMIT + 1):
            response = clients["anonymous"].post(
                f"{path}?{QUERY}",
                {"username": EMAIL, "password": "wrong"},  # pragma: allowlist secret
            )
        statuses.add(response.status_code)
    return statuses


@pytest.mark.urls("tests.config.urls_raising")
def test_failing_pages_log_no_query_values(clients, log_output):
    statuses = _fail_everywhere(clients)

    assert {400, 403, 404, 405, 429, 500} <= statuses
    output = log_output.getvalue()
    # The failures were logged, paths and parameter names included...
    for line in (
        "Bad Request: /bookings/scheduled/",
        "Not Found: /no-such-page",
        "Method Not Allowed",
        "Forbidden (CSRF",
        "Too Many Requests: /accounts/login/",
        "Internal Server Error: /test/crash",
        "Invalid HTTP_HOST header",
    ):
        assert line in output, line
    # ...and none of the values.
    _assert_nothing_personal(output)


def test_the_logged_request_keeps_its_path_and_parameter_names(clients, log_output):
    clients["signed in"].get(f"/bookings/scheduled/?{QUERY}")

    output = log_output.getvalue()
    assert "Bad Request: /bookings/scheduled/" in output
    if '"request"' in output:  # the JSON format prints the attached request
        assert (
            "/bookings/scheduled/?invitee_uuid=[redacted]&invitee_full_name=[redacted]"
            "&invitee_email=[redacted]&answer_1=[redacted]&event_start_time=[redacted]"
        ) in output
    _assert_nothing_personal(output)


def test_runserver_request_lines_keep_no_query_values(log_output):
    """django.server logs the request line as the client sent it."""
    handler = WSGIRequestHandler.__new__(WSGIRequestHandler)
    handler.request = None  # the socket, which runserver attaches to the record

    handler.log_message('"%s" %s %s', f"GET /bookings/scheduled/?{QUERY} HTTP/1.1", "404", "179")
    handler.log_message('"%s" %s %s', f"GET /builders/?{QUERY} HTTP/1.1", "200", "2048")

    output = log_output.getvalue()
    assert output.count("django.server") == 2
    assert '"GET /bookings/scheduled/?invitee_uuid=[redacted]&' in output
    _assert_nothing_personal(output)


# --- gunicorn, as production serves -----------------------------------------------------


def _lines(stream: io.TextIOBase, into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)
    into.put("")


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_gunicorn_access_log_keeps_no_query_values(tmp_path, log_format):
    """A real gunicorn with its access log on: the request line, the query, the referer
    and the redirect's Location (``?next=`` repeats the query) all lose their values."""
    access_format = '%(h)s "%(r)s" %(s)s q=%(q)s ref="%(f)s" loc="%({location}o)s"'
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/nonexistent"),
        "ENVIRONMENT": "test",
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "LOG_FORMAT": log_format,
    }
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "config.wsgi:application",
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--preload",
            "--access-logfile",
            "-",
            "--access-logformat",
            access_format,
            "--no-control-socket",
            "--worker-tmp-dir",
            str(tmp_path),
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_lines, args=(server.stdout, lines), daemon=True)
    reader.start()
    try:
        seen: list[str] = []
        port = None
        while port is None:
            line = lines.get(timeout=60)
            assert line, "gunicorn stopped:\n" + "".join(seen)
            seen.append(line)
            if listening := re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line):
                port = listening.group(1)
        base = f"http://127.0.0.1:{port}"
        referer = {"Referer": f"{base}/builders/?{QUERY}"}
        missing = requests.get(f"{base}/no-such-page?{QUERY}", headers=referer, timeout=30)
        redirected = requests.get(
            f"{base}/bookings/scheduled/?{QUERY}",
            headers=referer,
            allow_redirects=False,
            timeout=30,
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
        reader.join(timeout=30)
        server.stdout.close()

    assert (missing.status_code, redirected.status_code) == (404, 302)
    assert "clara" in redirected.headers["Location"].lower()  # it was there to leak
    output = "".join(seen) + "".join(iter(lines.get_nowait, ""))
    access = [line for line in output.splitlines() if "gunicorn.access" in line]
    assert len(access) == 2, output
    assert "GET /no-such-page?invitee_uuid=[redacted]&invitee_full_name=[redacted]" in output
    assert "q=invitee_uuid=[redacted]&" in output
    _assert_nothing_personal(output)


# --- The redaction itself ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "GET /bookings/scheduled/?invitee_full_name=Clara+Client&answer_1=x HTTP/1.1",
            "GET /bookings/scheduled/?invitee_full_name=[redacted]&answer_1=[redacted] HTTP/1.1",
        ),
        ("https://slotpay.example/b/?q=Clara", "https://slotpay.example/b/?q=[redacted]"),
        ("https://slotpay.example?q=Clara", "https://slotpay.example?q=[redacted]"),
        # A part that is no name=value pair, or whose name is not name-like, goes whole.
        ("/a?Clara%20Client", "/a?[redacted]"),
        ("/a?Clara+Client=1;ok=2", "/a?[redacted]&ok=[redacted]"),
        ("/a?name=O'Brien", "/a?name=[redacted]"),
        ('ref="/a?x=Clara" done', 'ref="/a?x=[redacted]" done'),
        ("/a?x=1#top", "/a?x=[redacted]#top"),
        # No path before it: not a query string.
        ("is this a question? yes", "is this a question? yes"),
        ("readyz.broker-unreachable", "readyz.broker-unreachable"),
    ],
)
def test_query_values_are_redacted_wherever_a_path_carries_them(text, expected):
    assert redact_queries(text) == expected
