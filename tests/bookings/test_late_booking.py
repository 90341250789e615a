"""A session booked inside the policy's last tier: the page says what is true."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from bookings import notify
from payments.models import Payment
from tests.bookings.factories import make_booking, make_event_type

pytestmark = pytest.mark.django_db


@pytest.fixture
def late(owner, stranger):
    """Booked and paid an hour ago for a session starting in two hours (default
    policy: 100% with 48 hours' notice, 50% with 24, nothing after)."""
    event_type = make_event_type(owner.builders.get())
    booking = make_booking(
        event_type,
        stranger,
        status="confirmed",
        start_at=timezone.now() + timedelta(hours=2),
        created_at=timezone.now() - timedelta(hours=1),
    )
    Payment.objects.create(
        booking=booking,
        checkout_session_id="cs_test_late",
        amount=booking.price_amount,
        currency=booking.currency,
        status="paid",
    )
    return booking


def test_deadlines_gone_before_it_was_booked_are_not_shown(late, stranger):
    browser = Client()
    browser.force_login(stranger)

    page = browser.get(f"/bookings/{late.reference}/").content.decode()

    assert "Cancel by" not in page  # 48 and 24 hours before: gone when it was booked
    assert "Cancel before the start: 0% back" in page
    assert "cancelling now refunds" in page
    assert "and refund" not in page  # the button offers no "refund €0.00"


def test_the_cancellation_email_promises_no_refund_when_none_is_due(
    late, django_capture_on_commit_callbacks
):
    from django.core import mail

    with django_capture_on_commit_callbacks(execute=True):
        notify.canceled(late, 0, "eur")

    [email] = mail.outbox
    assert "No refund is due" in email.body
    assert "business days" not in email.body
