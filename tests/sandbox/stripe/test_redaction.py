"""Forgetting a customer at the Stripe sandbox: the deletion is recorded and announced
(customer.deleted), and a redaction job removes the person's name and email from the
objects that still hold them (sessions, payment intents, charges) and from the copies
(events, idempotent answers, webhook deliveries), leaving the money facts."""

from __future__ import annotations

import json

import pytest

from payments import stripe_gateway
from sandbox.models import Delivery
from sandbox.stripe_sandbox.models import IdempotencyRecord, StripeObject
from tests.sandbox.stripe.helpers import new_session, pay

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL, NAME = "rita@example.com", "Rita Redact"


def paid(ref: str, email: str, name: str) -> stripe_gateway.CheckoutSession:
    session = new_session(ref, customer_email=email)
    assert pay(session.url, name=name).status_code == 303
    return stripe_gateway.retrieve_checkout_session(session.id)


def everything_stored() -> str:
    return json.dumps(
        [
            *StripeObject.objects.values_list("data", flat=True),
            *IdempotencyRecord.objects.values_list("body", flat=True),
            *Delivery.objects.values_list("body", flat=True),
        ]
    )


def test_a_deleted_customer_is_recorded_and_announced(stripe_sandbox: str) -> None:
    session = paid("bk_gone", EMAIL, NAME)

    assert stripe_gateway.delete_customer(session.customer_id) is True

    customer = stripe_gateway.retrieve_customer(session.customer_id)
    assert (customer.deleted, customer.email, customer.name) == (True, None, None)
    stored = StripeObject.objects.get(id=session.customer_id)
    assert stored.private["deleted_at"] > 0
    event = StripeObject.objects.get(object="event", data__type="customer.deleted")
    assert event.data["data"]["object"]["id"] == session.customer_id
    assert Delivery.objects.filter(event_type="customer.deleted").count() == 1


def test_a_redaction_job_forgets_the_person_and_keeps_the_money(stripe_sandbox: str) -> None:
    session = paid("bk_redact", EMAIL, NAME)
    kept = paid("bk_kept", "kim@example.com", "Kim Kept")
    intent = stripe_gateway.retrieve_payment_intent(session.payment_intent_id)
    stripe_gateway.delete_customer(session.customer_id)
    assert EMAIL in everything_stored()
    assert NAME in everything_stored()

    objects = {
        "customers": [session.customer_id],
        "checkout_sessions": [session.id],
        "payment_intents": [intent.id],
        "charges": [intent.latest_charge_id],
    }

    job = stripe_gateway.redact_objects(job_ref="subject-1", objects=objects)

    assert (job.status, job.finished) == ("succeeded", True)
    stored = everything_stored()
    assert EMAIL not in stored
    assert NAME not in stored
    charge = StripeObject.objects.get(id=intent.latest_charge_id).data
    assert charge["billing_details"]["name"] == "[redacted]"
    assert (charge["amount"], charge["paid"]) == (8000, True)
    assert stripe_gateway.retrieve_checkout_session(session.id).amount_total == 8000
    # Another customer's data is not touched.
    assert "kim@example.com" in stored
    assert "Kim Kept" in stored
    assert not StripeObject.objects.get(id=kept.customer_id).data.get("deleted")
    # The same job again (a retry): the first answer, nothing run twice.
    again = stripe_gateway.redact_objects(job_ref="subject-1", objects=objects)
    assert (again.id, again.finished) == (job.id, True)


def test_a_job_naming_an_unknown_object_is_refused(stripe_sandbox: str) -> None:
    with pytest.raises(stripe_gateway.NotFound):
        stripe_gateway.redact_objects(job_ref="subject-2", objects={"charges": ["ch_nothing"]})
