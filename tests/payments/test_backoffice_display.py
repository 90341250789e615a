"""What staff read on the refund, cancel-for-client, booking and approval pages:
money as people write it, staff by name, every time with its zone, no link to a page
the viewer may not open, and a form that expired says so.

Through the admin over HTTP, signed in as staff holding exactly the permissions named;
Stripe is the sandbox.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from django.test import override_settings
from django.utils.html import escape

from accounts.models import User
from bookings.models import Booking
from payments.models import Payment, RefundApproval
from tests.payments.test_approvals import LIST
from tests.payments.test_backoffice_refunds import (
    FINANCE,
    member,
    paid_booking,
    refund_page,
    signed_in,
    submit,
)

pytestmark = pytest.mark.django_db(transaction=True)

PAID_AT = datetime(2026, 11, 30, 10, 11, tzinfo=UTC)
STARTS_AT = datetime(2026, 12, 8, 0, 0, tzinfo=UTC)


def _booking() -> Booking:
    booking = paid_booking()
    Payment.objects.filter(booking=booking).update(paid_at=PAID_AT)
    Booking.objects.filter(pk=booking.pk).update(
        start_at=STARTS_AT, end_at=STARTS_AT + timedelta(hours=1)
    )
    return Booking.objects.get(pk=booking.pk)


def _finance(email: str = "finance@slotpay.example", zone: str = "") -> User:
    user = member(email, *FINANCE, "cancel_for_client")
    user.name, user.time_zone = "Fiona Finance", zone
    user.save()
    return user


def test_refunds_of_the_payment_are_shown_in_money_not_minor_units(stripe_sandbox) -> None:
    booking = _booking()
    browser = signed_in(_finance())
    submit(browser, booking, "1.00")

    page = browser.get(refund_page(booking)).content.decode()

    assert "Amount (minor units)" not in page
    assert "100 EUR" not in page
    assert "<td data-refund-amount>€1.00</td>" in page


@pytest.mark.parametrize(
    ("zone", "paid", "starts"),
    [
        ("", "2026-11-30 10:11 UTC", "2026-12-08 00:00 UTC"),
        ("Asia/Tokyo", "2026-11-30 19:11 Asia/Tokyo", "2026-12-08 09:00 Asia/Tokyo"),
    ],
)
def test_times_on_the_refund_and_cancel_pages_say_their_zone(
    stripe_sandbox, zone, paid, starts
) -> None:
    booking = _booking()
    browser = signed_in(_finance(zone=zone))

    refund = browser.get(refund_page(booking)).content.decode()
    cancel = browser.get(f"/admin/bookings/booking/{booking.pk}/cancel-for-client/")

    assert f"paid {paid}</caption>" in refund
    assert f"The session of {starts} cannot" in cancel.content.decode()


def test_the_booking_page_shows_the_price_and_no_link_to_the_clients_page(
    stripe_sandbox,
) -> None:
    booking = _booking()
    client = User.objects.create_user(email="clara@client.example", name="Clara")
    Booking.objects.filter(pk=booking.pk).update(client=client)
    browser = signed_in(_finance())

    page = browser.get(f"/admin/bookings/booking/{booking.pk}/change/").content.decode()

    assert "€80.00" in page
    assert "8000" not in page
    assert f"User {client.pk}" in page
    assert f"/admin/accounts/user/{client.pk}/" not in page
    assert f"/admin/bookings/eventtype/{booking.event_type_id}/" not in page
    assert escape(str(booking.event_type)) in page
    assert browser.get(f"/admin/accounts/user/{client.pk}/change/").status_code == 403


@override_settings(REFUND_APPROVAL_THRESHOLD="eur=5000")
def test_approvals_name_who_asked_and_who_decided_and_show_money(stripe_sandbox) -> None:
    booking = _booking()
    asker = _finance("fin-one@slotpay.example")
    decider = _finance("fin-two@slotpay.example")
    decider.name = ""
    decider.save()
    answer = submit(signed_in(asker), booking, "60.00")
    approval = RefundApproval.objects.get()
    [message] = [str(m) for m in answer.context["messages"]]
    link = f'<a href="/admin/payments/refundapproval/{approval.pk}/change/">'
    assert "waits for another Finance member's approval" in message
    assert link in message
    assert link in answer.content.decode()  # shown as a link, not escaped
    browser = signed_in(decider)
    browser.post(LIST, {"action": "reject_selected", "_selected_action": [str(approval.pk)]})

    listing = browser.get(LIST).content.decode()
    detail = browser.get(f"{LIST}{approval.pk}/change/").content.decode()

    approval.refresh_from_db()
    assert approval.decided_by == decider
    payment = approval.payment
    assert str(payment) == f"Payment {payment.pk} of €80.00 (Paid)"
    assert str(approval) == f"Refund approval {approval.pk} of €60.00 (Rejected)"
    for page in (listing, detail):
        assert "Fiona Finance" in page
        assert "fin-two@slotpay.example" in page
        assert f"User {asker.pk}" not in page
        assert f"User {decider.pk}" not in page
        assert "€60.00" in page
        assert "8000" not in page
        assert f"/admin/accounts/user/{asker.pk}/" not in page


@pytest.mark.parametrize("nonce", [None, "", "not-a-uuid"])
def test_a_form_without_a_valid_nonce_says_it_expired(stripe_sandbox, nonce) -> None:
    booking = _booking()
    browser = signed_in(_finance())
    form = {"amount": "10.00", "reason": "Goodwill"}
    if nonce is not None:
        form["nonce"] = nonce

    answer = browser.post(refund_page(booking), form)

    assert answer.status_code == 200
    assert (
        "This form expired or was already submitted: reload and try again."
        in answer.content.decode()
    )
    assert not Payment.objects.get(booking=booking).refunds.exists()


def test_a_valid_form_shows_no_expiry_message(stripe_sandbox) -> None:
    booking = _booking()
    answer = signed_in(_finance()).post(
        refund_page(booking), {"amount": "x", "reason": "r", "nonce": str(uuid4())}
    )
    assert "This form expired" not in answer.content.decode()
