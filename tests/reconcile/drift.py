"""Drift made on purpose in the sandboxes, the way it happens for real."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from bookings.calendly import CalendlyClient
from payments.models import Payment
from sandbox import db as sandbox_db
from sandbox.calendly_sandbox import services as calendly_sandbox
from sandbox.models import Delivery
from sandbox.stripe_sandbox import services as stripe_sandbox
from tests.bookings.world import Slot, World
from tests.sandbox.stripe.helpers import new_session, pay


def pay_while_our_endpoint_is_down(world: World, slot: Slot, settings: Any) -> None:
    """The client pays and closes the tab; every delivery of the payment fails (our
    endpoint answers 404 to the sandbox's URL) until the sandbox gives up."""
    token = settings.STRIPE_WEBHOOK_PATH_TOKEN
    settings.STRIPE_WEBHOOK_PATH_TOKEN = "moved-elsewhere"
    settings.SANDBOX_WEBHOOK_MAX_ATTEMPTS = 1
    try:
        world.pay(slot)
        world.deliver()
    finally:
        settings.STRIPE_WEBHOOK_PATH_TOKEN = token
    assert Delivery.objects.filter(provider="stripe", status=Delivery.Status.FAILED).exists()


def refund_in_the_dashboard_and_lose_its_delivery(payment: Payment, amount: int) -> list[str]:
    """A refund made at Stripe, not through us, whose webhooks never arrive; returns
    the ids of the events that were lost."""
    before = set(Delivery.objects.values_list("pk", flat=True))
    with sandbox_db.atomic():
        stripe_sandbox.refund_create(
            stripe_sandbox.RequestContext(),
            {"payment_intent": payment.payment_intent_id, "amount": str(amount)},
        )
    lost = Delivery.objects.exclude(pk__in=before)
    ids = list(lost.values_list("event_id", flat=True))
    lost.update(status=Delivery.Status.FAILED)
    return ids


def cancel_in_calendly_undelivered(world: World, slot: Slot) -> None:
    """Our webhook subscription is gone (Calendly deleted it after failures), then the
    client cancels on Calendly: nothing is delivered."""
    with CalendlyClient() as client:
        organization = client.current_user().current_organization
        for subscription in client.list_webhook_subscriptions(organization, "organization"):
            client.delete_webhook_subscription(subscription.uri)
    pending = Delivery.objects.filter(status=Delivery.Status.PENDING).count()
    assert calendly_sandbox.invitee_cancel(
        invitee=slot.invitee, reason="Something came up", urls=world.site.urls
    )
    assert Delivery.objects.filter(status=Delivery.Status.PENDING).count() == pending


def pay_a_session_we_have_no_booking_for() -> str:
    """A session naming a booking reference of our form that we never recorded (paid;
    its delivery arrives and is ignored, as it names nothing of ours)."""
    session = new_session(str(uuid4()))
    assert pay(session.url).status_code == 303
    return session.id
