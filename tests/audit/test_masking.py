"""What audit data, logs and Sentry events lose before they are written."""

import secrets

import pytest

from accounts.links import SECRET_BYTES
from core.masking import scrub, scrub_text


def test_emails_are_masked_in_keys_as_well_as_values():
    scrubbed = scrub({"jane.doe@example.org": "seen", "note": "mail jane.doe@example.org"})

    assert scrubbed == {"j***@e***.org": "seen", "note": "mail j***@e***.org"}


def test_a_card_number_given_as_a_number_is_masked():
    assert scrub({"ref": 4242424242424242}) == {"ref": "[card]"}


def test_ordinary_numbers_are_kept():
    assert scrub({"amount": 2500, "created": 1732780800123, "flag": True}) == {
        "amount": 2500,
        "created": 1732780800123,
        "flag": True,
    }


def test_sensitive_keys_lose_their_value_whatever_it_is():
    sensitive = {"password": "hunter2", "api_key": 12, "cvc": "123", "name": "x"}

    assert scrub(sensitive) == {
        "password": "[redacted]",
        "api_key": "[redacted]",
        "cvc": "[redacted]",
        "name": "x",
    }


def test_webhook_path_tokens_are_masked():
    from core.masking import scrub_text

    line = "Not Found: /webhooks/stripe/s3cr3t-T0ken_value/ and /webhooks/calendly/abc?x=1"
    assert scrub_text(line) == (
        "Not Found: /webhooks/stripe/[redacted]/ and /webhooks/calendly/[redacted]?x=1"
    )


@pytest.mark.parametrize(
    ("line", "leak"),
    [
        ("GET /x/leakc%40example%2Ecom/ HTTP/1.1", "leakc"),
        ("GET /x/john%2Bdoe%40example.com/ HTTP/1.1", "doe"),
        ("GET /x/4242%204242%204242%204242/ HTTP/1.1", "4242%204242"),
        ("GET /x/4242+4242+4242+4242/ HTTP/1.1", "4242+4242"),
    ],
)
def test_percent_encoded_personal_data_in_a_path_is_masked(line, leak):
    """A request line's path is logged as sent: decoding it must not be what reveals
    an email or a card number."""
    masked = scrub_text(line)

    assert leak not in masked
    assert "4242 4242" not in masked
    assert "@example" not in masked


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/verify/{}/",
        "/accounts/password/reset/{}/",
        "/accounts/recover/{}",
        "/bookings/claim/{}/?x=1",
    ],
)
def test_one_time_link_secrets_in_a_path_are_masked(path):
    secret = secrets.token_urlsafe(SECRET_BYTES)
    line = f'"GET {path.format(secret)} HTTP/1.1" 410'
    scrubbed = scrub_text(line)
    assert secret not in scrubbed
    assert scrubbed == line.replace(secret, "[redacted]")
