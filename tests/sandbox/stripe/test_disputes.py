"""Stripe's 0259 card: the payment succeeds, a dispute follows a few seconds later,
Stripe withdraws the funds; the dashboard submits evidence and closes it, won or lost."""

import pytest

from payments import stripe_gateway
from sandbox.stripe_sandbox import services as sandbox
from tests.sandbox.stripe.helpers import bring_due_work_forward, fixture, new_session, pay

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_dispute_follows_the_0259_card(stripe_sandbox, stripe_webhooks):
    session = new_session("bk_dispute")
    assert pay(session.url, "4000 0000 0000 0259").status_code == 303

    stripe_webhooks.deliver()
    assert [e.type for e in stripe_webhooks.events()] == ["checkout.session.completed"]

    bring_due_work_forward()
    stripe_webhooks.deliver()

    [dispute_event] = stripe_webhooks.of_type("charge.dispute.created")
    dispute = dispute_event["data"]["object"]
    intent = stripe_gateway.retrieve_payment_intent(
        stripe_gateway.retrieve_checkout_session(session.id).payment_intent_id
    )
    assert dispute["charge"] == intent.latest_charge_id
    assert dispute["amount"] == 8000
    assert set(dispute) == set(fixture("dispute"))
    assert stripe_gateway.retrieve_charge(intent.latest_charge_id).disputed is True
    with pytest.raises(stripe_gateway.InvalidRequest) as refused:
        stripe_gateway.create_refund(refund_ref="rf_disputed", payment_intent=intent.id)
    assert refused.value.code == "charge_disputed"


def test_no_dispute_before_its_time(stripe_sandbox, stripe_webhooks):
    session = new_session("bk_dispute_later")
    pay(session.url, "4000 0000 0000 0259")

    stripe_webhooks.deliver()

    assert stripe_webhooks.of_type("charge.dispute.created") == []


def _disputed(stripe_webhooks, booking_ref: str) -> tuple[dict, str]:
    """A 0259 payment whose dispute has opened (and been delivered); the dispute and
    the PaymentIntent's id."""
    session = new_session(booking_ref)
    pay(session.url, "4000 0000 0000 0259")
    bring_due_work_forward()
    stripe_webhooks.deliver()
    [created] = stripe_webhooks.of_type("charge.dispute.created")
    intent_id = stripe_gateway.retrieve_checkout_session(session.id).payment_intent_id
    return created["data"]["object"], intent_id


def test_funds_are_withdrawn_after_the_dispute_opens(stripe_sandbox, stripe_webhooks):
    dispute, _ = _disputed(stripe_webhooks, "bk_withdrawn")
    assert dispute["balance_transactions"] == []
    assert stripe_webhooks.of_type("charge.dispute.funds_withdrawn") == []

    bring_due_work_forward()
    stripe_webhooks.deliver()
    bring_due_work_forward()
    stripe_webhooks.deliver()  # once only, however often the clock moves

    [withdrawn] = stripe_webhooks.of_type("charge.dispute.funds_withdrawn")
    body = withdrawn["data"]["object"]
    assert body["id"] == dispute["id"]
    assert set(body) == set(fixture("dispute"))
    [txn] = body["balance_transactions"]
    assert (txn["amount"], txn["fee"], txn["net"]) == (-8000, 1500, -9500)
    assert (txn["object"], txn["type"], txn["source"]) == (
        "balance_transaction",
        "adjustment",
        dispute["id"],
    )
    read = stripe_gateway.retrieve_dispute(dispute["id"])
    assert [(t.amount, t.fee, t.net) for t in read.balance_transactions] == [(-8000, 1500, -9500)]


def test_evidence_then_won_reinstates_the_funds(stripe_sandbox, stripe_webhooks):
    dispute, intent_id = _disputed(stripe_webhooks, "bk_won")
    sandbox.dispute_submit_evidence(dispute["id"], text="Session held on time; notes attached.")
    stripe_webhooks.deliver()
    [updated] = stripe_webhooks.of_type("charge.dispute.updated")
    assert updated["data"]["object"]["status"] == "under_review"
    assert updated["data"]["object"]["evidence_details"]["submission_count"] == 1
    with pytest.raises(sandbox.ApiError, match="evidence was submitted already"):
        sandbox.dispute_submit_evidence(dispute["id"], text="again")

    sandbox.dispute_close(dispute["id"], won=True)
    stripe_webhooks.deliver()

    types = [e.type for e in stripe_webhooks.events()]
    # The withdrawal (due, or made when the dispute closed) comes first, as at Stripe.
    assert types.count("charge.dispute.funds_withdrawn") == 1
    assert (
        types.index("charge.dispute.funds_withdrawn")
        < types.index("charge.dispute.closed")
        < types.index("charge.dispute.funds_reinstated")
    )
    read = stripe_gateway.retrieve_dispute(dispute["id"])
    assert read.status == "won"
    assert [t.amount for t in read.balance_transactions] == [-8000, 8000]
    with pytest.raises(sandbox.ApiError, match="can no longer be changed"):
        sandbox.dispute_close(dispute["id"], won=False)
    # Won: the charge can be refunded again.
    refund = stripe_gateway.create_refund(refund_ref="rf_after_won", payment_intent=intent_id)
    assert refund.status == "succeeded"


def test_a_lost_dispute_is_closed_and_never_refundable(stripe_sandbox, stripe_webhooks):
    dispute, intent_id = _disputed(stripe_webhooks, "bk_lost")

    sandbox.dispute_close(dispute["id"], won=False)
    stripe_webhooks.deliver()

    [closed] = stripe_webhooks.of_type("charge.dispute.closed")
    assert closed["data"]["object"]["status"] == "lost"
    assert stripe_webhooks.of_type("charge.dispute.funds_reinstated") == []
    with pytest.raises(stripe_gateway.InvalidRequest) as refused:
        stripe_gateway.create_refund(refund_ref="rf_after_lost", payment_intent=intent_id)
    assert refused.value.code == "charge_disputed"


def test_the_dashboard_moves_a_dispute_on(stripe_sandbox, stripe_webhooks, client):
    dispute, _ = _disputed(stripe_webhooks, "bk_dashboard")
    page = client.get("/sandbox/stripe/")
    assert f'data-dispute="{dispute["id"]}"'.encode() in page.content
    assert b"Submit evidence" in page.content

    answered = client.post(
        "/sandbox/stripe/",
        {"dispute": dispute["id"], "action": "evidence", "evidence": "Delivered."},
        follow=True,
    )
    assert f"Dispute {dispute['id']} is now under_review.".encode() in answered.content
    assert b"Submit evidence" not in answered.content
    lost = client.post(
        "/sandbox/stripe/", {"dispute": dispute["id"], "action": "lost"}, follow=True
    )
    assert f"Dispute {dispute['id']} is now lost.".encode() in lost.content
    again = client.post(
        "/sandbox/stripe/", {"dispute": dispute["id"], "action": "won"}, follow=True
    )
    assert b"can no longer be changed" in again.content
    bad = client.post("/sandbox/stripe/", {"dispute": "nope", "action": "won"}, follow=True)
    assert b"Choose a dispute" in bad.content

    stripe_webhooks.deliver()
    types = [e.type for e in stripe_webhooks.events()]
    assert types.count("charge.dispute.updated") == 1
    assert types.index("charge.dispute.funds_withdrawn") < types.index("charge.dispute.closed")
