"""Periodic payment work (beat)."""

from __future__ import annotations

import contextlib

from celery import shared_task
from django.contrib.auth import get_user_model

from bookings.models import Booking
from payments import checkout, services, stripe_gateway
from payments.models import Refund


@shared_task(name="payments.tasks.retry_unfinished_refunds", ignore_result=True)
def retry_unfinished_refunds() -> int:
    """Every few minutes: refunds left pending by an outage are sent again (same key)."""
    return services.retry_unfinished_refunds()


@shared_task(name="payments.tasks.submit_refund", ignore_result=True)
def submit_refund(refund_pk: int, user_pk: int | None = None, label: str = "payments") -> None:
    """A refund decided inside a transaction (a webhook handler), sent after its commit."""
    refund = Refund.objects.select_related("payment").get(pk=refund_pk)
    actor = get_user_model().objects.filter(pk=user_pk).first() if user_pk else label
    services.submit_refund(refund, actor=actor or label)


@shared_task(
    name="payments.tasks.start_checkout",
    ignore_result=True,
    autoretry_for=(stripe_gateway.ProviderUnavailable,),
    retry_backoff=30,
    max_retries=5,
)
def start_checkout(booking_pk: int) -> None:
    """Open Checkout for a booking recorded by a webhook (the client may have left: the
    payment link goes by email). Retried while Stripe is unavailable."""
    booking = Booking.objects.get(pk=booking_pk)
    # Refused when paid, expired or taken over meanwhile: nothing to open then.
    with contextlib.suppress(checkout.CheckoutRefused):
        checkout.start_checkout(booking)
