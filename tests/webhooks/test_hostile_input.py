"""Hostile deliveries: each is the generic 400 with a counted reason, never a 500.

Headers and bodies no provider sends (timestamps thousands of digits long or written
in other scripts, non-ASCII or control characters, JSON nested a thousand deep,
envelopes whose fields have the wrong types) go through the real endpoints, signed
where the check under test comes after the signature.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time

import pytest

from tests.webhooks.conftest import Sender, current_secret, default_event
from tests.webhooks.test_verification import assert_refused
from webhooks.models import WebhookEvent

# Recording handlers: whatever gets through is not sent on to the providers.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("handlers")]


def signed_header(provider: str, body: bytes, timestamp: int | None = None) -> str:
    """``t=<t>,v1=<HMAC-SHA256 of "<t>." + body>``, as both providers sign (over bytes,
    so that bodies which are not UTF-8 can be signed too)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    key = current_secret(provider).encode()
    digest = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@pytest.mark.parametrize(
    "timestamp",
    [
        "9" * 5000,  # past int()'s 4,300-digit limit
        "9" * 4000,  # parses, and still no timestamp
        "\u00b2\u00b3",  # superscript digits: isdigit() but not int()
        "\u0661\u0667\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660",  # Arabic-Indic
        "\uff11\uff17\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff10",  # full-width
        "-1700000000",
        "",
    ],
    ids=["5000-nines", "4000-nines", "superscript", "arabic-indic", "full-width", "neg", "empty"],
)
def test_a_timestamp_that_is_not_a_few_ascii_digits_is_malformed(
    sender: Sender, provider: str, timestamp: str
) -> None:
    response = sender.post(header=f"t={timestamp},v1={'0' * 64}")
    assert_refused(response, provider, "signature_malformed")


def test_a_genuine_signature_with_the_timestamp_in_other_digits_is_refused(
    sender: Sender, provider: str
) -> None:
    """int() reads Arabic-Indic digits, so the signature would verify: still not a
    header any provider sends."""
    body = json.dumps(default_event(provider)).encode()
    now = int(time.time())
    header = signed_header(provider, body, now)
    arabic = str(now).translate({ord(d): 0x0660 + int(d) for d in "0123456789"})
    response = sender.post(body=body, header=header.replace(f"t={now}", f"t={arabic}"))
    assert_refused(response, provider, "signature_malformed")


@pytest.mark.parametrize(
    "signature",
    ["\u00e9" * 64, "0" * 63 + "\u00e9", "\u2603", "00\x00ff", "0" * 64 + "\x7f"],
    ids=["latin-1", "one-non-ascii", "snowman", "nul", "del"],
)
def test_a_signature_with_non_ascii_or_control_characters_is_malformed(
    sender: Sender, provider: str, signature: str
) -> None:
    response = sender.post(header=f"t={int(time.time())},v1={signature}")
    assert_refused(response, provider, "signature_malformed")


def test_non_ascii_anywhere_in_the_header_is_malformed(sender: Sender, provider: str) -> None:
    body = json.dumps(default_event(provider)).encode()
    genuine = signed_header(provider, body)
    for header in (genuine + ",v0=\u00e9", "\u00e9" + genuine, genuine + "\x00"):
        assert_refused(sender.post(body=body, header=header), provider, "signature_malformed")


def test_two_timestamps_are_malformed(sender: Sender, provider: str) -> None:
    """Stripe's library reads the first ``t``; a header with two is not Stripe's."""
    body = json.dumps(default_event(provider)).encode()
    genuine = signed_header(provider, body)
    header = f"{genuine},t={int(time.time()) + 30}"
    assert_refused(sender.post(body=body, header=header), provider, "signature_malformed")


def test_an_overlong_header_is_malformed(sender: Sender, provider: str) -> None:
    body = json.dumps(default_event(provider)).encode()
    header = signed_header(provider, body) + ",v1=" + "0" * 10_000
    assert_refused(sender.post(body=body, header=header), provider, "signature_malformed")


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_signed_json_nested_too_deep_is_refused(sender: Sender, provider: str, depth) -> None:
    body = ("[" * depth + "]" * depth).encode()
    response = sender.post(body=body, header=signed_header(provider, body))
    assert_refused(response, provider, "json_too_deep")


def test_a_valid_envelope_with_a_deep_field_is_refused(sender: Sender, provider: str) -> None:
    """json.loads manages a few hundred levels; the rest of the pipeline need not."""
    data = default_event(provider)
    deep: object = "bottom"
    for _ in range(300):
        deep = {"d": deep}
    data["extra"] = deep
    body = json.dumps(data).encode()
    response = sender.post(body=body, header=signed_header(provider, body))
    assert_refused(response, provider, "json_too_deep")


def test_signed_bytes_that_are_not_utf8_are_refused(sender: Sender, provider: str) -> None:
    body = b'{"id": "\xff\xfe"}'
    response = sender.post(body=body, header=signed_header(provider, body))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


# --- envelopes with fields of the wrong type, validly signed ---------------------------------

WRONG = [[], {}, 1, 1.5, True, "", "x" * 300, "\u0000", ["evt_1"], {"id": "x"}]


def _paths(provider: str) -> list[tuple[str, ...]]:
    if provider == "stripe":
        return [
            ("id",),
            ("object",),
            ("type",),
            ("created",),
            ("livemode",),
            ("data",),
            ("data", "object"),
            ("data", "object", "id"),
            ("data", "object", "object"),
        ]
    return [
        ("event",),
        ("created_at",),
        ("payload",),
        ("payload", "uri"),
        ("payload", "email"),
        ("payload", "status"),
        ("payload", "rescheduled"),
        ("payload", "scheduled_event"),
        ("payload", "scheduled_event", "uri"),
        ("payload", "tracking"),
        ("payload", "created_at"),
    ]


def test_every_envelope_field_of_the_wrong_type_is_a_schema_refusal(
    sender: Sender, provider: str, handlers
) -> None:
    base = default_event(provider)
    for path in _paths(provider):
        for wrong in WRONG:
            data = copy.deepcopy(base)
            parent = data
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = wrong
            body = json.dumps(data).encode()
            response = sender.post(body=body, header=signed_header(provider, body))
            assert response.status_code in (200, 400), (path, wrong, response.status_code)
            if response.status_code == 400:
                assert response.json()["error"] == "invalid_request"


def test_a_calendly_no_show_with_a_mark_of_the_wrong_type_is_refused(
    calendly_sender: Sender, handlers
) -> None:
    data = default_event("calendly", "invitee_no_show.created")
    for wrong in ([], "x", 1, {"uri": ["x"], "created_at": "2020-01-01T00:00:00Z"}):
        data["payload"]["no_show"] = wrong
        body = json.dumps(data).encode()
        response = calendly_sender.post(body=body, header=signed_header("calendly", body))
        assert_refused(response, "calendly", "schema_invalid")


def test_a_stripe_livemode_that_is_not_a_boolean_is_refused(stripe_sender: Sender) -> None:
    data = default_event("stripe")
    for wrong in ("false", 0, None, [False]):
        data["livemode"] = wrong
        body = json.dumps(data).encode()
        response = stripe_sender.post(body=body, header=signed_header("stripe", body))
        assert_refused(response, "stripe", "schema_invalid")


# --- what is stored: headers ------------------------------------------------------------------


@pytest.mark.postgres
def test_a_nul_in_a_stored_header_is_escaped_not_a_500(sender: Sender, provider, handlers):
    """PostgreSQL's jsonb refuses U+0000; SQLite does not, hence the marker."""
    response = sender.post(
        HTTP_USER_AGENT="Stripe/1.0 (+https://stripe.com)\x00\x01\u00e9\ud800",
        HTTP_X_REQUEST_ID="abc\x00def",
    )
    assert response.status_code == 200, response.content
    headers = WebhookEvent.objects.get().headers
    assert headers["User-Agent"] == "Stripe/1.0 (+https://stripe.com)\\x00\\x01\\xe9\\ud800"
    assert all(value.isascii() and value.isprintable() for value in headers.values())


def test_stored_headers_are_printable_ascii_and_bounded(sender: Sender, provider, handlers):
    response = sender.post(HTTP_USER_AGENT="agent\x00\n" + "u" * 5000)
    assert response.status_code == 200
    agent = WebhookEvent.objects.get().headers["User-Agent"]
    assert agent.startswith("agent\\x00\\x0a")
    assert agent.isascii()
    assert agent.isprintable()
    assert len(agent) <= 256
