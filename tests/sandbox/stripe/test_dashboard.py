"""The dashboard: a person creates a session through the real gateway and pays it."""

from urllib.parse import urlparse

import pytest

from sandbox.stripe_sandbox.models import RestrictedKey, StripeObject
from tests.sandbox.stripe.helpers import pay

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_form_creates_a_session_through_the_gateway(stripe_sandbox, client):
    browser = client

    created = browser.post(
        "/sandbox/stripe/",
        {
            "item_name": "Consultation",
            "amount": "80.00",
            "currency": "EUR",
            "automatic_tax": "on",
            "refund_terms": "Full refund up to a day before.",
        },
    )

    assert created.status_code == 302
    session = StripeObject.objects.get(object="checkout.session")
    assert created["Location"] == session.data["url"]
    assert session.data["amount_total"] == 9520
    assert session.data["metadata"]["booking"].startswith("sandbox-demo-")
    page = browser.get(urlparse(created["Location"]).path)
    assert b"Full refund up to a day before." in page.content

    paid = pay(session.data["url"])
    back = browser.get(paid["Location"])
    listing = browser.get("/sandbox/stripe/")
    assert b"paid" in back.content
    assert session.id[:20].encode() in listing.content
    assert b"visa" in listing.content


def test_the_dashboard_lists_nothing_at_first(client):
    page = client.get("/sandbox/stripe/")

    assert page.status_code == 200
    assert b"Create a test Checkout Session" in page.content
    assert b"None yet." in page.content


def test_a_restricted_key_can_be_created(client):
    client.post(
        "/sandbox/stripe/keys/",
        {
            "name": "refunds",
            "refunds": "write",
            "charges": "read",
            "checkout_sessions": "none",
            "payment_intents": "none",
            "customers": "none",
            "events": "none",
            "disputes": "none",
        },
    )

    key = RestrictedKey.objects.get()
    assert key.key.startswith("rk_test_")
    assert key.permissions == {"refunds": "write", "charges": "read"}
