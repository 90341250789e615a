"""The sandbox API over raw HTTP: Stripe's encoding, errors and key rules."""

import pytest
import requests

from sandbox.stripe_sandbox.models import StripeObject
from tests.sandbox.stripe.helpers import new_session

pytestmark = pytest.mark.django_db(transaction=True)

FORM = {
    "mode": "payment",
    "line_items[0][quantity]": "2",
    "line_items[0][price_data][currency]": "usd",
    "line_items[0][price_data][unit_amount]": "1250",
    "line_items[0][price_data][product_data][name]": "Office hour",
    "success_url": "https://slotpay.example/ok?s={CHECKOUT_SESSION_ID}",
    "metadata[booking]": "bk_raw",
    "automatic_tax[enabled]": "true",
    "expand[]": "line_items",
}


def _call(base, method, path, key, **kwargs):
    headers = {"Authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
    return requests.request(method, f"{base}{path}", headers=headers, timeout=10, **kwargs)


def test_nested_form_parameters_are_read_as_stripe_does(stripe_sandbox, settings):
    response = _call(
        stripe_sandbox, "POST", "/v1/checkout/sessions", settings.STRIPE_API_KEY, data=FORM
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["amount_subtotal"], body["total_details"]["amount_tax"]) == (2500, 475)
    assert body["amount_total"] == 2975
    assert body["metadata"] == {"booking": "bk_raw"}
    assert body["line_items"]["data"][0]["quantity"] == 2
    assert response.headers["Request-Id"].startswith("req_")
    assert StripeObject.objects.get(id=body["id"]).data["currency"] == "usd"


def test_errors_have_stripes_shape(stripe_sandbox, settings):
    key = settings.STRIPE_API_KEY
    unknown = _call(
        stripe_sandbox, "POST", "/v1/checkout/sessions", key, data={**FORM, "colour": "red"}
    )
    missing = _call(stripe_sandbox, "GET", "/v1/charges/ch_nope", key)
    no_route = _call(stripe_sandbox, "GET", "/v1/balance_transactions", key)

    assert unknown.status_code == 400
    assert unknown.json() == {
        "error": {
            "type": "invalid_request_error",
            "code": "parameter_unknown",
            "message": "Received unknown parameter: colour",
            "param": "colour",
        }
    }
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "resource_missing"
    assert no_route.status_code == 404
    assert "Unrecognized request URL" in no_route.json()["error"]["message"]


def test_idempotent_replays_are_marked(stripe_sandbox, settings):
    headers = {"Idempotency-Key": "raw-1"}
    first = _call(
        stripe_sandbox,
        "POST",
        "/v1/checkout/sessions",
        settings.STRIPE_API_KEY,
        data=FORM,
        headers=headers,
    )
    second = _call(
        stripe_sandbox,
        "POST",
        "/v1/checkout/sessions",
        settings.STRIPE_API_KEY,
        data=FORM,
        headers=headers,
    )
    other = _call(
        stripe_sandbox,
        "POST",
        "/v1/checkout/sessions",
        settings.STRIPE_API_KEY,
        data={**FORM, "metadata[booking]": "bk_other"},
        headers=headers,
    )

    assert second.json()["id"] == first.json()["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 400
    assert other.json()["error"]["type"] == "idempotency_error"


@pytest.mark.parametrize(
    ("key", "status", "message"),
    [
        (None, 401, "did not provide an API key"),
        ("sk_test_FAKEnotthekey", 401, "Invalid API Key"),
        ("rk_test_FAKEnotakey", 401, "Invalid API Key"),
        ("sk_" + "live_" + "FAKE1234567890", 401, "test keys only"),
        ("rk_" + "live_" + "FAKE1234567890", 401, "test keys only"),
    ],
)
def test_keys_the_sandbox_refuses(stripe_sandbox, key, status, message):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = requests.get(f"{stripe_sandbox}/v1/events", headers=headers, timeout=10)

    assert response.status_code == status
    assert message in response.json()["error"]["message"]
    if key:
        assert key not in response.text


def test_the_stripe_version_sent_is_recorded_on_events(stripe_sandbox, settings):
    session = new_session("bk_version")
    response = _call(
        stripe_sandbox,
        "POST",
        f"/v1/checkout/sessions/{session.id}/expire",
        settings.STRIPE_API_KEY,
        headers={"Stripe-Version": "2025-01-27.acacia"},
    )

    event = StripeObject.objects.get(object="event")
    assert response.headers["Stripe-Version"] == "2025-01-27.acacia"
    assert event.data["api_version"] == "2025-01-27.acacia"
    assert event.data["request"]["id"] == response.headers["Request-Id"]


def test_line_items_can_be_listed(stripe_sandbox, settings):
    session = new_session("bk_lines")

    response = _call(
        stripe_sandbox,
        "GET",
        f"/v1/checkout/sessions/{session.id}/line_items",
        settings.STRIPE_API_KEY,
    )

    assert response.json()["data"][0]["description"] == "Portfolio review, 60 minutes"


# live_server shares one SQLite connection between its threads: races need PostgreSQL.
@pytest.mark.connections
@pytest.mark.postgres
def test_concurrent_retries_with_one_key_create_one_session(stripe_sandbox, settings):
    from concurrent.futures import ThreadPoolExecutor

    def post(_: int) -> requests.Response:
        return _call(
            stripe_sandbox,
            "POST",
            "/v1/checkout/sessions",
            settings.STRIPE_API_KEY,
            data=FORM,
            headers={"Idempotency-Key": "raw-race"},
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(post, range(4)))
    retried = post(4)

    # As at Stripe: a copy sent while the first is still running is refused with a 409
    # (stripe-python retries it); the first's answer is replayed afterwards.
    assert {r.status_code for r in responses} <= {200, 409}
    assert 200 in {r.status_code for r in responses}
    for refused in (r for r in responses if r.status_code == 409):
        assert refused.json()["error"]["type"] == "idempotency_error"
    ids = {r.json()["id"] for r in [*responses, retried] if r.status_code == 200}
    assert retried.status_code == 200
    assert len(ids) == 1
    assert StripeObject.objects.filter(object="checkout.session").count() == 1
