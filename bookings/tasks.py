from __future__ import annotations

import contextlib
from typing import Any

from celery import shared_task

from bookings import checkout, services
from bookings import reconcile as reconciliation
from bookings.models import Booking
from payments import stripe_gateway


@shared_task(name="bookings.tasks.expire_unpaid", ignore_result=True)
def expire_unpaid() -> int:
    """Beat: unpaid bookings past BOOKING_PAYMENT_HOLD_MINUTES let their slot go."""
    return services.expire_overdue()


@shared_task(name="bookings.tasks.complete_past", ignore_result=True)
def complete_past() -> int:
    """Beat: confirmed bookings long over are completed."""
    return services.complete_past()


@shared_task(name="bookings.tasks.reconcile", ignore_result=True)
def reconcile() -> dict[str, Any]:
    """Beat, daily: catch up with what Stripe and Calendly say happened over the last
    RECONCILE_LOOKBACK_HOURS (missed events through the inbox; drift for a person).
    A failure raises the ``reconcile.failed`` alert before it propagates."""
    return reconciliation.reconcile().counts()


@shared_task(
    name="bookings.tasks.start_checkout",
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
        checkout.checkout_start(booking=booking)


# The task's name before it moved here from payments: outbox rows written under it
# (and tasks queued with it) before the deploy must still find it. It can go one
# release after the move, once no unsent outbox row names it.
@shared_task(
    name="payments.tasks.start_checkout",
    ignore_result=True,
    autoretry_for=(stripe_gateway.ProviderUnavailable,),
    retry_backoff=30,
    max_retries=5,
)
def start_checkout_under_old_name(booking_pk: int) -> None:
    start_checkout(booking_pk)
