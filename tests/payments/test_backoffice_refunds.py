"""Refunds from a booking's back-office page: Finance, stepped up, through the admin.

The admin is driven over HTTP with the Django test client, signed in as staff holding
exactly the permissions named; Stripe is the sandbox over real HTTP, so a refund made
here is one Stripe records.
"""

from __future__ import annotations

import re
from uuid import uuid4

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from accounts.models import Builder, User
from audit.models import AuditEntry
from bookings.models import Booking
from payments import stripe_gateway
from payments.models import Payment, Refund, RefundApproval
from tests.bookings.factories import make_booking, make_event_type
from tests.conftest import PASSWORD, step_up
from tests.sandbox.stripe.helpers import paid_session
from tests.support.concurrency import together

pytestmark = pytest.mark.django_db(transaction=True)

FINANCE = (
    "view_booking",
    "view_payment",
    "view_refund",
    "view_refundapproval",
    "issue_refund",
    "approve_refund",
)
SUPPORT = ("view_booking", "view_payment", "view_refund")


def member(email: str, *codenames: str) -> User:
    """A staff account holding exactly these permissions (by codename)."""
    user = User.objects.create_user(email=email, password=PASSWORD, name="Staff", is_staff=True)
    found = Permission.objects.filter(
        codename__in=codenames, content_type__app_label__in=("bookings", "payments")
    )
    assert sorted(p.codename for p in found) == sorted(codenames)
    user.user_permissions.add(*found)
    return user


def signed_in(user: User, *, stepped_up: bool = True) -> Client:
    browser = Client()
    browser.force_login(user)
    if stepped_up:
        step_up(browser)
    return browser


def paid_booking(*, currency: str = "eur", price: int = 8000, days_ahead: float = 5) -> Booking:
    """A confirmed booking paid through Stripe's (sandbox) Checkout."""
    builder = Builder.objects.create(name="Olive's Studio", slug=f"studio-{uuid4().hex[:8]}")
    event_type = make_event_type(builder, price_amount=price, currency=currency)
    start = timezone.now() + timezone.timedelta(days=days_ahead)
    booking = make_booking(event_type, None, start_at=start)
    booking.confirm(actor="test")
    session = paid_session(f"bk_{booking.pk}", currency=currency, amount=price)
    Payment.objects.create(
        booking=booking,
        checkout_session_id=session.id,
        payment_intent_id=session.payment_intent_id,
        amount=price,
        currency=currency,
        status=Payment.Status.PAID,
        paid_at=timezone.now(),
    )
    return booking


def refund_page(booking: Booking) -> str:
    return f"/admin/bookings/booking/{booking.pk}/refund/"


def nonce_of(page) -> str:
    return re.search(rb'name="nonce" value="([0-9a-f-]+)"', page.content).group(1).decode()


def submit(browser: Client, booking: Booking, amount: str, reason: str = "Goodwill", **extra):
    """Open the refund page and submit its form, as a person does."""
    page = browser.get(refund_page(booking))
    assert page.status_code == 200, page
    form = {"amount": amount, "reason": reason, "nonce": nonce_of(page), **extra}
    return browser.post(refund_page(booking), form, follow=True)


def shown_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def refunded_at_stripe(booking: Booking) -> int:
    payment = Payment.objects.get(booking=booking)
    intent = stripe_gateway.retrieve_payment_intent(payment.payment_intent_id)
    return stripe_gateway.retrieve_charge(intent.latest_charge_id).amount_refunded


@pytest.fixture
def finance(db: None) -> User:
    return member("finance@slotpay.example", *FINANCE)


def test_finance_refunds_part_then_the_rest(stripe_sandbox, finance) -> None:
    booking = paid_booking()
    browser = signed_in(finance)

    page = browser.get(refund_page(booking))
    assert page.status_code == 200
    assert b'data-amount="paid">\xe2\x82\xac80.00' in page.content
    assert b'data-amount="remaining">\xe2\x82\xac80.00' in page.content
    assert b"100%: \xe2\x82\xac80.00" in page.content  # five days ahead: all of it

    done = submit(browser, booking, "12.50", "Late start")
    assert done.redirect_chain[0][0].endswith(
        f"{refund_page(booking)}?payment={booking.payments.get().pk}"
    )
    assert shown_messages(done) == ["Refunded €12.50: Stripe reports the refund succeeded."]
    assert b'data-amount="remaining">\xe2\x82\xac67.50' in done.content
    assert b'data-amount="succeeded">\xe2\x82\xac12.50' in done.content

    rest = submit(browser, booking, "67.50", "Client not satisfied")
    assert shown_messages(rest) == ["Refunded €67.50: Stripe reports the refund succeeded."]
    assert b"Nothing remains to refund" in rest.content

    assert refunded_at_stripe(booking) == 8000
    payment = Payment.objects.get(booking=booking)
    assert payment.status == Payment.Status.REFUNDED
    assert sorted(payment.refunds.values_list("amount", "status", "requested_by")) == [
        (1250, "succeeded", finance.pk),
        (6750, "succeeded", finance.pk),
    ]
    requested = AuditEntry.objects.filter(action="payments.refund.requested")
    assert {(e.actor_type, e.actor_id) for e in requested} == {("user", str(finance.pk))}
    assert RefundApproval.objects.count() == 0


def test_an_amount_in_yen_is_typed_without_decimals(stripe_sandbox, finance) -> None:
    booking = paid_booking(currency="jpy", price=12000)
    browser = signed_in(finance)

    refused = submit(browser, booking, "1500.5")
    assert "JPY amounts have no decimals." in refused.content.decode()
    done = submit(browser, booking, "1500")

    assert shown_messages(done) == ["Refunded ¥1,500: Stripe reports the refund succeeded."]
    assert refunded_at_stripe(booking) == 1500


def test_without_a_step_up_nothing_is_refunded(stripe_sandbox, finance) -> None:
    booking = paid_booking()
    browser = signed_in(finance, stepped_up=False)

    page = browser.get(refund_page(booking))
    assert page.status_code == 302
    assert page["Location"].startswith("/accounts/step-up/?next=")
    posted = browser.post(
        refund_page(booking), {"amount": "10.00", "reason": "r", "nonce": str(uuid4())}
    )
    assert posted.status_code == 302
    assert posted["Location"].startswith("/accounts/step-up/")

    assert Refund.objects.count() == 0
    assert refunded_at_stripe(booking) == 0


def test_support_may_look_but_not_refund(stripe_sandbox) -> None:
    booking = paid_booking()
    support = member("support@slotpay.example", *SUPPORT)
    browser = signed_in(support)

    booking_page = browser.get(f"/admin/bookings/booking/{booking.pk}/change/")
    assert booking_page.status_code == 200
    assert refund_page(booking).encode() not in booking_page.content
    assert b"clara@client.example" not in booking_page.content  # masked
    assert b"c***@c***.example" in booking_page.content
    assert browser.get(refund_page(booking)).status_code == 403
    forged = browser.post(
        refund_page(booking), {"amount": "80.00", "reason": "mine", "nonce": str(uuid4())}
    )
    assert forged.status_code == 403
    assert Refund.objects.count() == 0


def test_the_booking_and_payment_pages_lead_to_the_refund(stripe_sandbox, finance) -> None:
    booking = paid_booking()
    browser = signed_in(finance, stepped_up=False)
    payment = booking.payments.get()

    booking_page = browser.get(f"/admin/bookings/booking/{booking.pk}/change/")
    payment_page = browser.get(f"/admin/payments/payment/{payment.pk}/change/")

    assert refund_page(booking).encode() in booking_page.content
    assert f"{refund_page(booking)}?payment={payment.pk}".encode() in payment_page.content
    assert b"\xe2\x82\xac0.00 refunded, \xe2\x82\xac80.00 remains" in payment_page.content


@pytest.mark.parametrize(
    ("amount", "reason", "error"),
    [
        ("-5", "r", "Enter a positive amount using the digits 0-9"),
        ("0", "r", "The amount must be more than zero."),
        ("0.00", "r", "The amount must be more than zero."),
        ("12.345", "r", "EUR amounts have at most 2 decimals."),
        ("80.01", "r", "Only €80.00 remains."),
        ("twelve", "r", "Enter a positive amount using the digits 0-9"),
        ("1e3", "r", "Enter a positive amount using the digits 0-9"),
        ("9" * 30, "r", "That amount is far too large."),
        ("9" * 50, "r", "Ensure this value has at most 40 characters"),
        ("12\x00", "r", "Null characters are not allowed."),
        ("\u0661\u0662", "r", "Enter an amount using the digits 0-9"),
        ("", "r", "This field is required."),
        ("10.00", "", "This field is required."),
        ("10.00", "x" * 201, "Ensure this value has at most 200 characters"),
    ],
)
def test_a_bad_amount_or_reason_is_refused_and_nothing_is_made(
    stripe_sandbox, finance, amount, reason, error
) -> None:
    booking = paid_booking()
    browser = signed_in(finance)

    answer = submit(browser, booking, amount, reason)

    assert answer.status_code == 200
    assert answer.redirect_chain == []
    assert error in answer.content.decode()
    assert (Refund.objects.count(), RefundApproval.objects.count()) == (0, 0)
    assert not AuditEntry.objects.filter(action__startswith="payments.refund").exists()


def test_the_same_form_submitted_twice_refunds_once(stripe_sandbox, finance) -> None:
    booking = paid_booking()
    browser = signed_in(finance)
    page = browser.get(refund_page(booking))
    form = {"amount": "20.00", "reason": "Double click", "nonce": nonce_of(page)}

    first = browser.post(refund_page(booking), form, follow=True)
    second = browser.post(refund_page(booking), form, follow=True)

    assert shown_messages(first) == ["Refunded €20.00: Stripe reports the refund succeeded."]
    assert shown_messages(second) == ["Refunded €20.00: Stripe reports the refund succeeded."]
    assert Refund.objects.count() == 1
    assert refunded_at_stripe(booking) == 2000


def test_stripe_refusing_the_refund_shows_its_reason(stripe_sandbox, finance) -> None:
    booking = paid_booking()
    payment = booking.payments.get()
    # Refunded in full in the Stripe dashboard, and we have not heard of it yet.
    stripe_gateway.create_refund(
        refund_ref="dashboard", payment_intent=payment.payment_intent_id, amount=8000
    )
    browser = signed_in(finance)

    answer = submit(browser, booking, "30.00")

    [message] = shown_messages(answer)
    assert message.startswith("Stripe refused the refund of €30.00: ")
    assert "has already been refunded" in message
    assert Refund.objects.get().status == Refund.Status.FAILED
    assert b'data-refund-status="failed"' in answer.content
    assert AuditEntry.objects.filter(
        action="payments.refund.failed", actor_id=str(finance.pk)
    ).exists()


@pytest.mark.connections
@pytest.mark.postgres
@pytest.mark.parametrize("amount", ["20.00", "80.00"])
def test_the_same_form_submitted_twice_at_once_refunds_once(
    stripe_sandbox, finance, amount, settings
) -> None:
    """From two tabs, or a double click that beat the page: one decision. 80.00 is over
    the threshold set here, so the two race to file the one approval instead."""
    settings.REFUND_APPROVAL_THRESHOLD = "eur=5000"
    booking = paid_booking()
    browsers = [signed_in(finance), signed_in(finance)]
    form = {
        "amount": amount,
        "reason": "Two tabs",
        "nonce": nonce_of(browsers[0].get(refund_page(booking))),
    }

    answers = together(2, lambda i: browsers[i].post(refund_page(booking), form))

    assert [a.status_code for a in answers] == [302, 302]
    made = list(Refund.objects.values_list("amount", "status"))
    waiting = list(RefundApproval.objects.values_list("amount", "status"))
    if amount == "20.00":
        assert (made, waiting) == ([(2000, "succeeded")], [])
        assert refunded_at_stripe(booking) == 2000
    else:
        assert (made, waiting) == ([], [(8000, "pending")])
        assert refunded_at_stripe(booking) == 0


@pytest.mark.connections
@pytest.mark.postgres
def test_ten_refunds_of_one_payment_at_once_queue_without_deadlocks(
    stripe_sandbox, finance
) -> None:
    """Ten forms loaded one by one (ten nonces), submitted at the same moment: they
    decide one after another; what no longer fits is refused with a message, never a
    500 (they deadlocked on the payment's and the audit head's locks)."""
    booking = paid_booking()
    browsers = [signed_in(finance) for _ in range(10)]
    forms = [
        {
            "amount": "10.00",
            "reason": f"Goodwill {i}",
            "nonce": nonce_of(b.get(refund_page(booking))),
        }
        for i, b in enumerate(browsers)
    ]

    answers = together(10, lambda i: browsers[i].post(refund_page(booking), forms[i]))

    assert not [a for a in answers if isinstance(a, Exception)], answers
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 200] + [302] * 8, codes
    for answer in answers:
        if answer.status_code == 200:
            assert "Only €0.00 remains" in answer.content.decode()
    made = list(Refund.objects.values_list("amount", "status"))
    assert made == [(1000, "succeeded")] * 8
    assert refunded_at_stripe(booking) == 8000
    assert Payment.objects.get(booking=booking).status == Payment.Status.REFUNDED
