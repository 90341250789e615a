"""Paying on the hosted Checkout page with Stripe's test cards."""

import re
from urllib.parse import urlparse

import pytest
import requests
from django.test import Client

from payments import stripe_gateway
from sandbox.stripe_sandbox.models import StripeObject
from tests.sandbox.stripe.helpers import CANCEL_URL, TERMS, new_session, pay

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_page_shows_what_is_bought_and_the_refund_terms(stripe_sandbox):
    session = new_session("bk_page", amount=8000, automatic_tax=True)

    page = Client().get(urlparse(session.url).path)

    assert page.status_code == 200
    html = page.content.decode()
    assert "Portfolio review, 60 minutes" in html
    assert "80.00 EUR" in html
    assert "Tax (19 %)" in html
    assert "15.20 EUR" in html
    assert "95.20 EUR" in html
    assert TERMS.replace("%", "%") in html
    assert f'href="{CANCEL_URL}"' in html
    assert "sandbox-stripe.css" in html
    assert "<script" not in html
    assert "style=" not in html


def test_4242_pays_and_returns_to_the_success_url(stripe_sandbox):
    session = new_session("bk_4242")

    response = pay(session.url, "4242 4242 4242 4242")

    assert response.status_code == 303
    assert response["Location"] == f"https://slotpay.example/bookings/paid/?session={session.id}"
    paid = stripe_gateway.retrieve_checkout_session(session.id)
    assert (paid.status, paid.payment_status) == ("complete", "paid")
    assert paid.customer_id.startswith("cus_")
    intent = stripe_gateway.retrieve_payment_intent(paid.payment_intent_id)
    assert (intent.status, intent.amount_received) == ("succeeded", 8000)
    assert intent.metadata == {"booking": "bk_4242"}
    charge = stripe_gateway.retrieve_charge(intent.latest_charge_id)
    assert (charge.brand, charge.last4, charge.risk_level) == ("visa", "4242", "normal")
    assert charge.receipt_url.endswith(f"/sandbox/stripe/receipts/{charge.id}/")
    assert charge.payment_intent_id == intent.id
    receipt = Client().get(urlparse(charge.receipt_url).path)
    assert b"80.00 EUR" in receipt.content
    assert b"ending in 4242" in receipt.content


@pytest.mark.parametrize(
    ("number", "message", "decline_code"),
    [
        ("4000 0000 0000 0002", "Your card was declined.", "generic_decline"),
        ("4000 0000 0000 9995", "Your card has insufficient funds.", "insufficient_funds"),
    ],
)
def test_a_declined_card_leaves_the_session_open(stripe_sandbox, number, message, decline_code):
    session = new_session(f"bk_{decline_code}")

    response = pay(session.url, number)

    assert response.status_code == 402
    html = response.content.decode()
    assert message in html
    assert decline_code in html
    again = stripe_gateway.retrieve_checkout_session(session.id)
    assert (again.status, again.payment_status, again.payment_intent_id) == (
        "open",
        "unpaid",
        None,
    )
    assert not StripeObject.objects.filter(object="charge").exists()
    assert pay(session.url, "4242424242424242").status_code == 303  # another card works


def test_card_form_mistakes_are_explained(stripe_sandbox):
    session = new_session("bk_typo")

    assert b"card number is invalid" in pay(session.url, "4242 4242 4242 4241").content
    assert b"expiration year is in the past" in pay(session.url, expiry="01 / 20").content
    assert b"non test" in pay(session.url, "4012 8888 8888 1881").content


def test_a_paid_session_cannot_be_paid_again(stripe_sandbox):
    session = new_session("bk_once")
    pay(session.url)

    page = Client().get(urlparse(session.url).path)
    second = pay(session.url)

    assert b"This session has been paid" in page.content
    assert b'name="number"' not in page.content
    assert second.status_code == 402
    assert b"cannot be paid" in second.content
    assert StripeObject.objects.filter(object="charge").count() == 1


def test_an_expired_session_says_so(stripe_sandbox):
    session = new_session("bk_gone")
    stripe_gateway.expire_checkout_session(session.id)

    page = Client().get(urlparse(session.url).path)

    assert b"has expired" in page.content
    assert pay(session.url).status_code == 402


def test_paying_over_real_http_with_the_csrf_token(stripe_sandbox):
    session = new_session("bk_http")
    browser = requests.Session()

    page = browser.get(session.url, timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
    paid = browser.post(
        session.url,
        data={
            "csrfmiddlewaretoken": token,
            "method": "card",
            "number": "4242 4242 4242 4242",
            "expiry": "12/34",
            "cvc": "123",
            "email": "casey@example.com",
        },
        headers={"Referer": session.url},
        allow_redirects=False,
        timeout=10,
    )
    browser.close()

    assert paid.status_code == 303, paid.text[:500]
    assert paid.headers["Location"].endswith(f"?session={session.id}")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
