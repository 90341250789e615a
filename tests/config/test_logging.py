"""Log lines leave masked, and carry the request id, in both of the project's formats.

The records go through the real root "console" handler that settings.LOGGING builds
(its filters and formatter), only with its stream pointed at a StringIO.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import logging.config
import re
from collections.abc import Callable, Iterator

import pytest
from django.conf import settings
from django.test import override_settings

from core.http import current_request_id

EMAIL = "jane.doe@example.com"
CARD = "4242 4242 4242 4242"
# Millisecond timestamps have 13 digits, like the shortest card numbers; one in ten
# passes the Luhn check, as this one does.
TIMESTAMP_LUHN_VALID = "1718000000006"
TIMESTAMP = "1718000000001"
REQUEST_ID = "req-0123456789abcdef"


def _fake_secret(prefix: str, mode: str = "") -> str:
    # Assembled at runtime so that no key-shaped literal sits in the source.
    return prefix + "_" + (mode + "_" if mode else "") + "FAKE" + "0123456789abcdef" * 2


SECRETS = {
    "stripe test key": _fake_secret("sk", "test"),
    "stripe live key": _fake_secret("sk", "live"),
    "webhook secret": _fake_secret("whsec"),
}


@pytest.fixture(params=["text", "json"])
def log_format(request: pytest.FixtureRequest) -> str:
    return request.param


def _project_formatter(name: str) -> logging.Formatter:
    config = copy.deepcopy(settings.LOGGING)  # the configurator pops keys from it
    return logging.config.DictConfigurator(config).configure_formatter(config["formatters"][name])


@pytest.fixture
def console() -> Iterator[Callable[[str], io.StringIO]]:
    """Point the project's console handler at a StringIO, in the format asked for."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    stream = io.StringIO()
    old_stream = handler.setStream(stream)
    old_formatter = handler.formatter

    def use(log_format: str) -> io.StringIO:
        handler.setFormatter(_project_formatter(log_format))
        return stream

    yield use
    handler.setStream(old_stream)
    handler.setFormatter(old_formatter)


@pytest.fixture
def in_request() -> Iterator[None]:
    token = current_request_id.set(REQUEST_ID)
    yield
    current_request_id.reset(token)


# The text format's first line of a record; traceback lines follow it.
TEXT_RECORD = re.compile(
    r"^\d{4}-\d\d-\d\d [\d:,]+ (?P<level>\w+) (?P<logger>\S+) \[(?P<request_id>[^]]*)\] "
)


def _records(stream: io.StringIO, log_format: str) -> list[dict[str, str]]:
    """Level, logger and request id of each record written, in either format."""
    lines = stream.getvalue().splitlines()
    if log_format == "json":
        return [json.loads(line) for line in lines]  # one line per record, always
    return [match.groupdict() for line in lines if (match := TEXT_RECORD.match(line))]


logger = logging.getLogger("slotpay.tests.logging")


def test_email_and_card_are_masked_but_timestamps_are_not(console, in_request, log_format):
    stream = console(log_format)

    logger.warning(
        "charge for %s with card %s failed at %s and %s",
        EMAIL,
        CARD,
        TIMESTAMP,
        TIMESTAMP_LUHN_VALID,
    )

    output = stream.getvalue()
    assert EMAIL not in output
    assert "j***@e***.com" in output
    assert CARD not in output
    assert "4242" not in output
    assert "[card]" in output
    assert TIMESTAMP in output
    assert TIMESTAMP_LUHN_VALID in output


@pytest.mark.parametrize("name", SECRETS)
def test_secrets_are_masked(console, in_request, log_format, name):
    stream = console(log_format)
    secret = SECRETS[name]

    logger.info("calling stripe with %s", secret)
    logger.info("bearer header: Bearer %s", secret)

    output = stream.getvalue()
    assert secret not in output
    assert "FAKE" not in output
    assert output.count("[redacted]") == 2


def test_password_assignments_are_masked(console, in_request, log_format):
    stream = console(log_format)

    logger.warning("login retry password=hunter2-correct-horse user=%s", "u-17")
    url = "postgres://slotpay:s3cr3t-pw@db.internal:5432/slotpay"  # pragma: allowlist secret
    logger.warning("connecting to %s", url)

    output = stream.getvalue()
    assert "hunter2-correct-horse" not in output
    assert "s3cr3t-pw" not in output
    assert "password=[redacted]" in output
    assert "postgres://slotpay:[redacted]@db.internal" in output
    assert "u-17" in output


def test_extras_are_masked(console, in_request, log_format):
    stream = console(log_format)

    logger.warning(
        "refund.failed",
        extra={"customer": EMAIL, "api_key": SECRETS["stripe live key"], "attempt": 3},
    )

    output = stream.getvalue()
    assert EMAIL not in output
    assert "FAKE" not in output
    if log_format == "json":
        line = json.loads(output)
        assert line["customer"] == "j***@e***.com"
        assert line["api_key"] == "[redacted]"
        assert line["attempt"] == 3


def test_tracebacks_are_masked(console, in_request, log_format):
    stream = console(log_format)

    try:
        raise ValueError(f"refund for {EMAIL} with {CARD} via {SECRETS['stripe live key']}")
    except ValueError:
        logger.exception("refund.crashed")

    output = stream.getvalue()
    assert "Traceback (most recent call last)" in output
    assert "ValueError: refund for j***@e***.com with [card] via [redacted]" in output
    assert EMAIL not in output
    assert CARD not in output
    assert "FAKE" not in output
    if log_format == "json":
        line = json.loads(output)
        assert "j***@e***.com" in line["exc_info"]


def test_every_line_carries_the_request_id(console, in_request, log_format):
    stream = console(log_format)

    logger.info("first")
    logger.warning("second with %s", EMAIL)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("third")

    records = _records(stream, log_format)
    assert [record["logger"] for record in records] == ["slotpay.tests.logging"] * 3
    assert [record["request_id"] for record in records] == [REQUEST_ID] * 3


def test_outside_a_request_the_id_is_a_dash(console, log_format):
    stream = console(log_format)

    logger.info("from a management command")

    assert [record["request_id"] for record in _records(stream, log_format)] == ["-"]


@override_settings(REDIS_URL="redis://127.0.0.1:1/0")
def test_lines_logged_while_answering_a_request_carry_its_id(console, client, db, log_format):
    """Django logs 4xx/5xx responses after the middleware returned: still this request."""
    stream = console(log_format)

    response = client.get(f"/readyz?contact={EMAIL}", headers={"X-Request-ID": REQUEST_ID})

    assert response.status_code == 503
    assert response["X-Request-ID"] == REQUEST_ID
    output = stream.getvalue()
    assert "readyz.broker-unreachable" in output
    assert "Service Unavailable: /readyz" in output
    assert EMAIL not in output
    records = _records(stream, log_format)
    assert [(r["logger"], r["request_id"]) for r in records] == [
        ("config.views", REQUEST_ID),
        ("django.request", REQUEST_ID),
    ]


def test_json_lines_have_the_documented_fields(console, in_request):
    stream = console("json")

    logger.warning("payment.webhook.replayed for %s", EMAIL)

    line = json.loads(stream.getvalue())
    assert line["level"] == "WARNING"
    assert line["logger"] == "slotpay.tests.logging"
    assert line["message"] == "payment.webhook.replayed for j***@e***.com"
    assert line["request_id"] == REQUEST_ID
    assert "time" in line


def test_the_logged_request_keeps_its_path_and_parameter_names_only(
    console, client, db, log_format
):
    """django.request passes the request along and the JSON line prints it: the query's
    values stay out (tests/config/test_log_privacy.py tries every page)."""
    stream = console(log_format)

    client.get("/no-such-page?email=jane.doe%40example.com&card=4242424242424242&name=Jane+Doe")

    output = stream.getvalue()
    assert "Not Found: /no-such-page" in output
    assert "jane.doe" not in output
    assert "Jane" not in output
    assert "4242424242424242" not in output
    if log_format == "json":
        line = json.loads(output.splitlines()[0])
        assert line["request"] == (
            "<WSGIRequest: GET '/no-such-page?email=[redacted]&card=[redacted]&name=[redacted]'>"
        )


def test_djangos_own_records_go_through_our_filters_only():
    """With DEBUG on, Django's default console handler printed "Not Found: /a@b.example/"
    beside our masked line: the "django" logger now has our handler alone."""
    handlers = [
        handler
        for handler in logging.getLogger("django").handlers
        if not type(handler).__module__.startswith("_pytest")  # pytest's capture
    ]

    assert handlers
    for handler in handlers:
        names = {type(f).__name__ for f in handler.filters}
        assert {"MaskingFilter", "QueryStringFilter"} <= names


def test_a_refused_request_is_one_line_without_a_traceback(console, staff, client):
    """A permission check that worked is not an error: no traceback buries real ones."""
    stream = console("text")
    staff.is_superuser = False
    staff.is_staff = True
    staff.save()
    client.force_login(staff)

    assert client.get("/admin/auth/group/").status_code == 403

    logged = stream.getvalue()
    assert "Forbidden (Permission denied): /admin/auth/group/" in logged
    assert "Traceback" not in logged


def test_a_refused_admin_lookup_is_one_warning_line_whatever_its_text(console, staff, client):
    """``_to_field`` and lookups the admin refuses are the sender's text: a WARNING
    without a traceback, its line breaks escaped (no forged record), never an ERROR."""
    stream = console("text")
    client.force_login(staff)
    forged = "\r\n2026-11-30 12:00:00,000 ERROR slotpay.payments [-] Set-Cookie: x=1"

    for query in (
        {"_to_field": forged},
        {"pk__regex": "\n.*"},
        {"last_login__regex": "x\u2028y"},
    ):
        assert client.get("/admin/accounts/user/", query).status_code == 400

    lines = stream.getvalue().splitlines()
    records = [TEXT_RECORD.match(line) for line in lines]
    assert all(records), lines  # every line starts a record: none was forged
    assert {(m["level"], m["logger"]) for m in records} == {
        ("WARNING", "django.security.DisallowedModelAdminToField"),
        ("WARNING", "django.security.DisallowedModelAdminLookup"),
    }
    assert "Traceback" not in stream.getvalue()
    assert "\\r\\n2026-11-30 12:00:00,000 ERROR" in stream.getvalue()


def test_line_breaks_in_any_message_are_escaped(console, in_request, log_format):
    stream = console(log_format)

    logger.warning("Not Found: /bookings/%s", "x\r\nFAKE RECORD\x00\x1b[31m\u2029 typed\\n")

    [line] = stream.getvalue().splitlines()
    message = json.loads(line)["message"] if log_format == "json" else line
    assert message.endswith(
        "Not Found: /bookings/x\\r\\nFAKE RECORD\\x00\\x1b[31m\\u2029 typed\\\\n"
    )
