from __future__ import annotations

from celery import shared_task

from bookings import services


@shared_task(name="bookings.tasks.expire_unpaid", ignore_result=True)
def expire_unpaid() -> int:
    """Beat: unpaid bookings past BOOKING_PAYMENT_HOLD_MINUTES let their slot go."""
    return services.expire_overdue()


@shared_task(name="bookings.tasks.complete_past", ignore_result=True)
def complete_past() -> int:
    """Beat: confirmed bookings long over are completed."""
    return services.complete_past()
