"""Stripe's errors become ours: Stripe's code and request id kept, personal data not."""

import pytest
import stripe

from payments import stripe_gateway


def _invalid_email_error() -> stripe.InvalidRequestError:
    body = {
        "error": {
            "type": "invalid_request_error",
            "code": "email_invalid",
            "param": "customer_email",
            "message": "Invalid email address: casey.client@example.com",
        }
    }
    return stripe.InvalidRequestError(
        body["error"]["message"],
        "customer_email",
        "email_invalid",
        http_body="{}",
        http_status=400,
        json_body=body,
        headers={"request-id": "req_FAKE123"},
    )


def test_an_echoed_email_address_is_masked():
    error = stripe_gateway._translate(_invalid_email_error())

    assert isinstance(error, stripe_gateway.InvalidRequest)
    assert (error.code, error.param, error.request_id, error.http_status) == (
        "email_invalid",
        "customer_email",
        "req_FAKE123",
        400,
    )
    assert "casey.client@example.com" not in str(error)
    assert "req_FAKE123" in str(error)


@pytest.mark.parametrize(
    ("stripe_error", "ours"),
    [
        (
            stripe.CardError("Your card was declined.", None, "card_declined"),
            stripe_gateway.CardDeclined,
        ),
        (
            stripe.IdempotencyError("Keys for idempotent requests..."),
            stripe_gateway.IdempotencyConflict,
        ),
        (stripe.PermissionError("No permission"), stripe_gateway.PermissionDenied),
        (stripe.AuthenticationError("Invalid API Key"), stripe_gateway.AuthenticationFailed),
        (stripe.APIConnectionError("Connection refused"), stripe_gateway.ProviderUnavailable),
        (stripe.RateLimitError("Too many requests"), stripe_gateway.ProviderUnavailable),
        (stripe.APIError("Internal error"), stripe_gateway.ProviderUnavailable),
    ],
)
def test_each_stripe_error_has_its_own_class(stripe_error, ours):
    translated = stripe_gateway._translate(stripe_error)

    assert type(translated) is ours
    assert isinstance(translated, stripe_gateway.PaymentProviderError)


def test_an_unreachable_stripe_is_unavailable(settings, db):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens there

    try:
        with pytest.raises(stripe_gateway.ProviderUnavailable):
            stripe_gateway.retrieve_charge("ch_any")
    finally:
        stripe_gateway.close_clients()
