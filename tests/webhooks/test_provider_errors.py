"""Which provider answers are permanent: the contract the webhook pipeline reads.

Permanent (the event is ignored): the object does not exist, the request is invalid.
Not permanent (the event fails and is retried, finally a dead letter): our
credentials refused, our idempotency keys in conflict, rate limits, provider errors.
"""

from __future__ import annotations

import pytest
import requests
import stripe

from bookings import calendly
from core.providers import ProviderError
from payments import stripe_gateway


def _stripe(error: stripe.StripeError) -> ProviderError:
    return stripe_gateway._translate(error)


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (
            stripe.InvalidRequestError("No such charge", "id", "resource_missing", http_status=404),
            True,
        ),
        (stripe.InvalidRequestError("Invalid integer", "amount", http_status=400), True),
        (stripe.CardError("Your card was declined.", None, "card_declined", http_status=402), True),
        (stripe.IdempotencyError("Keys for idempotent requests...", http_status=400), False),
        (stripe.AuthenticationError("Invalid API Key", http_status=401), False),
        (stripe.PermissionError("No permission", http_status=403), False),
        (stripe.RateLimitError("Too many requests", http_status=429), False),
        (stripe.APIError("Internal error", http_status=500), False),
        (stripe.APIConnectionError("Connection refused"), False),
    ],
    ids=["404", "400", "card", "idempotency", "401", "403", "429", "500", "no-connection"],
)
def test_stripe_errors(error: stripe.StripeError, permanent: bool) -> None:
    ours = _stripe(error)
    assert isinstance(ours, ProviderError)
    assert ours.permanent is permanent


@pytest.mark.parametrize(
    ("status", "permanent"),
    [
        (400, True),
        (404, True),
        (409, True),
        (422, True),
        (401, False),
        (403, False),
        (429, False),
        (500, False),
        (503, False),
        (418, False),
    ],
)
def test_calendly_errors(status: int, permanent: bool) -> None:
    response = requests.Response()
    response.status_code, response._content = status, b'{"title": "Refused"}'
    error = calendly.CalendlyClient._error(response, "test")
    assert isinstance(error, ProviderError)
    assert error.permanent is permanent
