"""A dispute's record moves forward only, whatever order Stripe's reports come in; the
back-office shows it (evidence deadline and days left, the payment's net amount) to
those allowed to read it."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import uuid4

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from accounts.models import Builder, User
from payments.admin import days_left, evidence_deadline
from payments.models import Dispute, Payment
from tests.bookings.factories import make_booking, make_event_type
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.get_fixed_timezone(0))


def withdrawal(amount: int = -8000, fee: int = 1500, txn: str = "txn_out") -> dict:
    return {"id": txn, "amount": amount, "fee": fee, "net": amount - fee, "created": None}


@pytest.fixture
def payment() -> Payment:
    builder = Builder.objects.create(name="Olive's Studio", slug=f"studio-{uuid4().hex[:8]}")
    booking = make_booking(make_event_type(builder), None)
    return Payment.objects.create(
        booking=booking,
        checkout_session_id=f"cs_test_{uuid4().hex}",
        amount=8000,
        currency="eur",
        status=Payment.Status.DISPUTED,
        paid_at=timezone.now(),
    )


@pytest.fixture
def dispute(payment: Payment) -> Dispute:
    return Dispute.objects.create(
        stripe_dispute_id="du_test_1",
        payment=payment,
        amount=8000,
        currency="eur",
        reason="fraudulent",
        status=Dispute.Status.NEEDS_RESPONSE,
        evidence_due_by=NOW + timedelta(days=3),
        opened_at=NOW,
    )


def test_each_report_moves_it_forward_once(dispute: Dispute) -> None:
    due = dispute.evidence_due_by
    assert (
        dispute.absorb(status="needs_response", evidence_due_by=due, balance_transactions=[]) == []
    )
    assert dispute.absorb(
        status="needs_response", evidence_due_by=due, balance_transactions=[withdrawal()]
    ) == ["funds_withdrawn"]
    assert (dispute.funds_withdrawn, dispute.fees) == (8000, 1500)
    # The same withdrawal again (a repeat, a stale read) counts once.
    assert (
        dispute.absorb(
            status="needs_response", evidence_due_by=due, balance_transactions=[withdrawal()]
        )
        == []
    )
    assert dispute.absorb(
        status="under_review", evidence_due_by=due, balance_transactions=[withdrawal()]
    ) == ["updated"]
    back_in = withdrawal(8000, 0, "txn_back")
    assert dispute.absorb(
        status="won", evidence_due_by=due, balance_transactions=[withdrawal(), back_in]
    ) == ["won", "funds_reinstated"]
    assert (dispute.funds_withdrawn, dispute.funds_reinstated, dispute.fees) == (8000, 8000, 1500)
    assert dispute.closed_at is not None


def test_a_stale_report_never_moves_it_back(dispute: Dispute) -> None:
    dispute.absorb(status="lost", evidence_due_by=None, balance_transactions=[withdrawal()])
    for earlier in ("needs_response", "under_review", "warning_needs_response"):
        later_due = NOW + timedelta(days=9)
        assert (
            dispute.absorb(status=earlier, evidence_due_by=later_due, balance_transactions=[]) == []
        )
        assert dispute.status == "lost"
    # Closed stays closed, as first reported.
    assert dispute.absorb(status="won", evidence_due_by=None, balance_transactions=[]) == []
    assert dispute.status == "lost"
    with pytest.raises(ValueError, match="unknown dispute status"):
        dispute.absorb(status="charge_refunded", evidence_due_by=None, balance_transactions=[])


def test_an_inquiry_may_become_a_chargeback(dispute: Dispute) -> None:
    dispute.status = Dispute.Status.WARNING_UNDER_REVIEW
    new_due = NOW + timedelta(days=20)
    assert dispute.absorb(
        status="needs_response", evidence_due_by=new_due, balance_transactions=[]
    ) == ["updated"]
    assert (dispute.status, dispute.evidence_due_by) == ("needs_response", new_due)


def test_the_net_amount_follows_refunds_and_disputes(payment: Payment, dispute: Dispute) -> None:
    assert payment.net_amount == 8000
    payment.refunds.create(amount=1000, reason="goodwill", status="succeeded")
    payment.refunds.create(amount=500, reason="pending", status="pending")
    Dispute.objects.filter(pk=dispute.pk).update(funds_withdrawn=7000)
    assert payment.net_amount == 0
    Dispute.objects.filter(pk=dispute.pk).update(funds_reinstated=7000)
    assert payment.net_amount == 7000


@pytest.mark.parametrize(
    ("due", "shown"),
    [
        (NOW + timedelta(days=3), "3 days left"),
        (NOW + timedelta(days=1), "1 day left"),
        (NOW + timedelta(days=1, hours=23), "1 day left"),
        (NOW + timedelta(hours=11), "less than a day left"),
        (NOW + timedelta(hours=2), "less than a day left"),  # not "1 day" past midnight
        (NOW - timedelta(hours=2), "overdue by less than a day"),  # not "due today"
        (NOW - timedelta(days=1), "overdue by 1 day"),
        (NOW - timedelta(days=2, hours=1), "overdue by 2 days"),
    ],
)
def test_days_left_are_counted_from_now_whatever_the_zone(due, shown) -> None:
    assert days_left(due, now=NOW) == shown


def test_the_deadline_says_what_stripe_waits_for(dispute: Dispute) -> None:
    with time_machine.travel(NOW, tick=False):
        assert evidence_deadline(dispute) == "evidence due 2026-12-03 12:00 UTC (3 days left)"
        dispute.status = Dispute.Status.UNDER_REVIEW
        assert evidence_deadline(dispute) == "evidence submitted (was due 2026-12-03 12:00 UTC)"
        dispute.status = Dispute.Status.LOST
        assert evidence_deadline(dispute) == "closed (evidence was due 2026-12-03 12:00 UTC)"


def member(email: str, *codenames: str) -> Client:
    user = User.objects.create_user(email=email, password=PASSWORD, name="Staff", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=codenames, content_type__app_label="payments")
    )
    browser = Client()
    browser.force_login(user)
    return browser


def test_the_dispute_list_shows_status_deadline_and_payment(dispute: Dispute) -> None:
    with time_machine.travel(NOW, tick=False):
        # Signed in at the page's time: a staff session idle 30 minutes has ended.
        finance = member("finance@slotpay.example", "view_dispute", "view_payment")
        listing = finance.get("/admin/payments/dispute/")
        page = finance.get(f"/admin/payments/dispute/{dispute.pk}/change/")
        payment_page = finance.get(f"/admin/payments/payment/{dispute.payment_id}/change/")
    assert listing.status_code == 200
    assert b"du_test_1" in listing.content
    assert b"Needs response" in listing.content
    assert b"(3 days left)" in listing.content
    assert f"/admin/payments/payment/{dispute.payment_id}/change/".encode() in listing.content
    assert "€80.00".encode() in listing.content
    assert page.status_code == 200
    assert "€80.00 (paid €80.00 - refunded €0.00 - withdrawn €0.00".encode() in page.content
    assert b"Delete" not in page.content
    assert b'name="_save"' not in page.content
    assert payment_page.status_code == 200
    assert f"/admin/payments/dispute/{dispute.pk}/change/".encode() in payment_page.content
    assert b"du_test_1</a>: Needs response, evidence due 2026-12-03" in payment_page.content


def test_only_those_allowed_read_disputes(dispute: Dispute) -> None:
    support = member("support@slotpay.example", "view_payment", "view_refund")
    assert support.get("/admin/payments/dispute/").status_code == 403
    auditor = member("auditor@slotpay.example", "view_dispute")
    assert auditor.get("/admin/payments/dispute/").status_code == 200
    assert auditor.post(f"/admin/payments/dispute/{dispute.pk}/delete/").status_code == 403


@pytest.mark.parametrize(
    ("status", "offers_refund"),
    [
        (Payment.Status.OPEN, False),  # nothing paid: its booking's refund page is a 404
        (Payment.Status.PAID, True),
        (Payment.Status.PARTIALLY_REFUNDED, True),
        (Payment.Status.REFUNDED, False),
    ],
)
def test_the_refund_button_is_offered_only_for_money_to_refund(
    payment: Payment, status: str, offers_refund: bool
) -> None:
    Payment.objects.filter(pk=payment.pk).update(status=status)
    finance = member("finance@slotpay.example", "view_payment", "issue_refund")

    page = finance.get(f"/admin/payments/payment/{payment.pk}/change/")

    assert page.status_code == 200
    assert (b">Refund</a>" in page.content) is offers_refund
