"""``expand[]`` as Stripe reads it: an id replaced by its object, recursively along a
dotted path, at most four levels deep; and the gateway's session read with its
payment, which relies on it."""

from dataclasses import replace

import pytest
import requests

from payments import stripe_gateway
from sandbox.stripe_sandbox.models import StripeObject
from tests.sandbox.stripe.helpers import new_session, paid_session

pytestmark = pytest.mark.django_db(transaction=True)


def _get(base: str, path: str, key: str, expand: list[str]) -> requests.Response:
    return requests.get(
        f"{base}{path}",
        params=[("expand[]", field) for field in expand],
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )


def test_a_dotted_path_expands_each_object_on_its_way(stripe_sandbox, settings):
    session = paid_session("bk_expand")

    response = _get(
        stripe_sandbox,
        f"/v1/checkout/sessions/{session.id}",
        settings.STRIPE_API_KEY,
        ["payment_intent.latest_charge.refunds"],
    )

    assert response.status_code == 200, response.text
    intent = response.json()["payment_intent"]
    assert (intent["id"], intent["object"]) == (session.payment_intent_id, "payment_intent")
    charge = intent["latest_charge"]
    assert charge["object"] == "charge"
    assert charge["payment_intent"] == intent["id"]  # not asked for: left an id
    assert charge["refunds"]["object"] == "list"
    # What is stored is untouched: a plain read still names the objects by id.
    stored = StripeObject.objects.get(id=session.id).data
    assert stored["payment_intent"] == session.payment_intent_id
    assert StripeObject.objects.get(id=intent["id"]).data["latest_charge"] == charge["id"]


def test_a_null_field_on_the_way_stays_null(stripe_sandbox, settings):
    session = new_session("bk_expand_open")  # not paid: no PaymentIntent yet

    response = _get(
        stripe_sandbox,
        f"/v1/checkout/sessions/{session.id}",
        settings.STRIPE_API_KEY,
        ["payment_intent.latest_charge"],
    )

    assert response.status_code == 200, response.text
    assert response.json()["payment_intent"] is None


@pytest.mark.parametrize(
    ("expand", "message"),
    [
        (["payment_intent.nothing"], "cannot be expanded (payment_intent.nothing)"),
        (["payment_intent."], "cannot be expanded (payment_intent.)"),
        (
            ["payment_intent.latest_charge.payment_intent.latest_charge.customer"],
            "more than 4 levels",
        ),
    ],
)
def test_what_stripe_refuses_to_expand(stripe_sandbox, settings, expand, message):
    session = paid_session("bk_expand_refused")

    response = _get(
        stripe_sandbox, f"/v1/checkout/sessions/{session.id}", settings.STRIPE_API_KEY, expand
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "expand")
    assert message in error["message"]


def test_a_list_counts_its_data_level(stripe_sandbox, settings):
    paid_session("bk_expand_list")

    three = _get(
        stripe_sandbox,
        "/v1/checkout/sessions",
        settings.STRIPE_API_KEY,
        ["data.payment_intent.latest_charge"],
    )
    five = _get(
        stripe_sandbox,
        "/v1/checkout/sessions",
        settings.STRIPE_API_KEY,
        ["data.payment_intent.latest_charge.payment_intent.customer"],
    )

    assert three.status_code == 200, three.text
    assert three.json()["data"][0]["payment_intent"]["latest_charge"]["object"] == "charge"
    assert five.status_code == 400
    assert "more than 4 levels" in five.json()["error"]["message"]


def test_the_gateway_reads_a_session_with_its_payment_in_one_call(stripe_sandbox):
    session = paid_session("bk_expand_gateway")
    intent = stripe_gateway.retrieve_payment_intent(session.payment_intent_id)
    charge = stripe_gateway.retrieve_charge(intent.latest_charge_id or "")

    read = stripe_gateway.retrieve_checkout_session(session.id, with_payment=True)

    assert read.payment_intent_id == session.payment_intent_id
    assert read.payment_intent is not None
    assert read.payment_intent.latest_charge == charge
    assert replace(read.payment_intent, latest_charge=None) == intent
    # Without it, the ids only, as before.
    plain = stripe_gateway.retrieve_checkout_session(session.id)
    assert plain.payment_intent is None
    assert plain.payment_intent_id == session.payment_intent_id
