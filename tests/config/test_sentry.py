"""What reaches Sentry is masked: checked on the envelopes the SDK really sends.

A small HTTP server on 127.0.0.1 plays Sentry's ingest endpoint and keeps every body
it receives; the SDK is set up by ``config.sentry.init_sentry``, as in production.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode

import pytest
import sentry_sdk

from config.sentry import init_sentry

EMAIL = "jane.doe@example.com"
CARD = "4242 4242 4242 4242"
MASKED_EMAIL = "j***@e***.com"
# Assembled at runtime so that no token-shaped literal sits in the source.
BEARER = "FAKE" + "0123456789abcdef" * 2
COOKIE = "sessionvalue" + "0123456789abcdef" * 2
# A Calendly redirect's kind of query: the client's name and a free-text answer too.
QUERY = urlencode(
    {
        "email": EMAIL,
        "card": CARD.replace(" ", ""),
        "name": "Clara Client",
        "answer_1": "Pricing,\nand the roadmap",
    }
)


class _Ingest(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        encoding = self.headers.get("Content-Encoding")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding:
            raise AssertionError(f"unexpected Content-Encoding: {encoding}")
        self.server.received.append((self.path, body.decode("utf-8")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the test output quiet


@pytest.fixture
def ingest() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ingest)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def sentry(ingest: ThreadingHTTPServer) -> Iterator[list[tuple[str, str]]]:
    """Sentry on, sending to ``ingest``; off again afterwards for the other tests."""
    init_sentry(dsn=f"http://public@127.0.0.1:{ingest.server_port}/1", environment="test")
    with sentry_sdk.isolation_scope():  # no breadcrumbs from earlier tests
        yield ingest.received
    sentry_sdk.get_client().close(timeout=2)
    sentry_sdk.get_global_scope().set_client(None)


def _events(received: list[tuple[str, str]]) -> list[dict]:
    """The "event" items of every envelope (a header line, then item header/payload pairs)."""
    sentry_sdk.flush(timeout=5)
    events = []
    for path, body in received:
        assert path == "/api/1/envelope/"
        lines = body.splitlines()
        for header, payload in zip(lines[1::2], lines[2::2], strict=False):
            if json.loads(header)["type"] == "event":
                events.append(json.loads(payload))
    return events


def _assert_nothing_personal(received: list[tuple[str, str]]) -> str:
    everything = "\n".join(body for _, body in received)
    assert EMAIL not in everything
    assert "jane.doe" not in everything
    assert "Clara" not in everything
    assert "roadmap" not in everything
    assert CARD not in everything
    assert CARD.replace(" ", "") not in everything
    assert BEARER not in everything
    assert COOKIE not in everything
    return everything


def test_the_sdk_sends_no_default_personal_data(sentry):
    assert sentry_sdk.get_client().should_send_default_pii() is False


def test_a_captured_exception_is_masked(sentry):
    logging.getLogger("slotpay.tests.sentry").info("looking up %s", EMAIL)  # a breadcrumb
    try:
        raise ValueError(f"charge for {EMAIL} with card {CARD} failed")
    except ValueError:
        sentry_sdk.capture_exception()

    events = _events(sentry)

    assert len(events) == 1
    event = events[0]
    assert event["environment"] == "test"
    exception = event["exception"]["values"][-1]
    assert exception["type"] == "ValueError"
    assert exception["value"] == f"charge for {MASKED_EMAIL} with card [card] failed"
    crumbs = [crumb.get("message") for crumb in event["breadcrumbs"]["values"]]
    assert f"looking up {MASKED_EMAIL}" in crumbs
    _assert_nothing_personal(sentry)


def test_an_error_log_is_masked(sentry):
    logging.getLogger("slotpay.tests.sentry").error("refund for %s failed", EMAIL)

    events = _events(sentry)

    assert len(events) == 1
    assert events[0]["logentry"]["formatted"] == f"refund for {MASKED_EMAIL} failed"
    _assert_nothing_personal(sentry)


@pytest.mark.urls("tests.config.urls_raising")
def test_a_crashing_request_reaches_sentry_without_personal_data(sentry, live_server):
    """Over real HTTP, so that the SDK's WSGI middleware adds the URL and headers."""
    request = urllib.request.Request(  # noqa: S310 (http://localhost only)
        f"{live_server.url}/test/crash?{QUERY}",
        headers={
            "Authorization": f"Bearer {BEARER}",
            "Cookie": f"slotpay_session={COOKIE}",
            "Referer": f"{live_server.url}/builders/?{QUERY}",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as failure:
        urllib.request.urlopen(request, timeout=10)  # noqa: S310

    failure.value.close()
    assert failure.value.code == 500
    events = _events(sentry)
    assert len(events) == 1
    event = events[0]
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    request_data = event["request"]
    assert request_data["url"].endswith("/test/crash")
    # Calendly's redirect carries the invitee's name and answers in the query: no values.
    assert "query_string" not in request_data
    referer = next(v for k, v in request_data["headers"].items() if k.lower() == "referer")
    assert referer.endswith(
        "/builders/?email=[redacted]&card=[redacted]&name=[redacted]&answer_1=[redacted]"
    )
    assert "cookies" not in request_data
    assert {"authorization", "cookie"}.isdisjoint(name.lower() for name in request_data["headers"])
    assert "user" not in event
    _assert_nothing_personal(sentry)


def test_an_outgoing_call_leaves_no_query_values_in_breadcrumbs(sentry, ingest):
    """The SDK records each HTTP call we make, its query apart (``http.query``)."""
    url = f"http://127.0.0.1:{ingest.server_port}/invitees?{QUERY}"
    with pytest.raises(urllib.error.HTTPError) as failure:  # the ingest stub takes POSTs only
        urllib.request.urlopen(url, timeout=10)
    failure.value.close()
    try:
        raise RuntimeError(f"Calendly did not answer for {url}")
    except RuntimeError:
        sentry_sdk.capture_exception()

    events = _events(sentry)

    assert len(events) == 1
    crumb = next(c for c in events[0]["breadcrumbs"]["values"] if c.get("category") == "httplib")
    assert crumb["data"]["url"].endswith("/invitees")
    assert "http.query" not in crumb["data"]
    message = events[0]["exception"]["values"][-1]["value"]
    assert message.endswith(
        "/invitees?email=[redacted]&card=[redacted]&name=[redacted]&answer_1=[redacted]"
    )
    _assert_nothing_personal(sentry)


@pytest.mark.django_db
def test_a_refused_admin_lookup_sends_sentry_nothing(sentry, client, staff):
    """Anyone signed in to the admin can make thousands: logged as a warning only
    (Django's loggers reach our console handler only, not the root where Sentry reads)."""
    client.force_login(staff)

    assert client.get("/admin/accounts/user/", {"_to_field": "password"}).status_code == 400
    logging.getLogger("slotpay.tests.sentry").error("a real error")

    assert [e["logentry"]["formatted"] for e in _events(sentry)] == ["a real error"]
