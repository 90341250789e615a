"""Four eyes on refunds: above REFUND_APPROVAL_THRESHOLD or beyond the agreed policy, a
refund waits for a second Finance member, who approves it from the back-office list.

Through the admin over HTTP, Stripe being the sandbox over real HTTP.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import IntegrityError, transaction
from django.test import Client, override_settings

from audit.models import AuditEntry
from bookings.models import Booking
from payments.models import Payment, Refund, RefundApproval
from payments.thresholds import Threshold, ThresholdError
from tests.conftest import step_up
from tests.payments.test_backoffice_refunds import (
    FINANCE,
    member,
    paid_booking,
    refunded_at_stripe,
    shown_messages,
    signed_in,
    submit,
)
from tests.support.concurrency import together

pytestmark = pytest.mark.django_db(transaction=True)

LIST = "/admin/payments/refundapproval/"


@pytest.fixture
def requester(db: None):
    return member("fin-one@slotpay.example", *FINANCE)


@pytest.fixture
def approver(db: None):
    return member("fin-two@slotpay.example", *FINANCE)


def decide(browser: Client, action: str, *approvals: RefundApproval) -> Any:
    return browser.post(
        LIST,
        {"action": action, "_selected_action": [str(a.pk) for a in approvals]},
        follow=True,
    )


def waiting_refund(requester, amount: str = "60.00", booking: Booking | None = None) -> Any:
    """A refund over the threshold (EUR 50.00 here), asked for through the page."""
    answer = submit(signed_in(requester), booking or paid_booking(), amount, "Broken call")
    [message] = shown_messages(answer)
    assert "waits for another Finance member's approval" in message
    return RefundApproval.objects.get(status="pending")


@override_settings(REFUND_APPROVAL_THRESHOLD="eur=5000")
def test_above_the_threshold_the_refund_waits(stripe_sandbox, requester) -> None:
    approval = waiting_refund(requester)

    assert (approval.status, approval.amount, approval.currency) == ("pending", 6000, "eur")
    assert (approval.requested_by, approval.beyond_policy) == (requester, False)
    assert Refund.objects.count() == 0
    assert refunded_at_stripe(approval.payment.booking) == 0
    entry = AuditEntry.objects.get(action="payments.refund.approval_requested")
    assert (entry.actor_id, entry.data["over_threshold"]) == (str(requester.pk), True)


@override_settings(REFUND_APPROVAL_THRESHOLD="eur=5000")
def test_at_the_threshold_it_does_not(stripe_sandbox, requester) -> None:
    answer = submit(signed_in(requester), paid_booking(), "50.00")
    assert shown_messages(answer) == ["Refunded €50.00: Stripe reports the refund succeeded."]
    assert RefundApproval.objects.count() == 0


@override_settings(REFUND_APPROVAL_THRESHOLD="eur=5000")
def test_small_refunds_cannot_add_up_past_the_threshold(stripe_sandbox, requester) -> None:
    booking = paid_booking()
    browser = signed_in(requester)

    first = submit(browser, booking, "30.00")
    second = submit(browser, booking, "30.00")

    assert shown_messages(first) == ["Refunded €30.00: Stripe reports the refund succeeded."]
    assert "waits for another Finance member's approval" in shown_messages(second)[0]
    assert refunded_at_stripe(booking) == 3000
    assert RefundApproval.objects.get().amount == 3000


def test_beyond_the_policy_it_waits_under_the_threshold(stripe_sandbox, requester) -> None:
    # 30 hours ahead, the default policy gives 50%: EUR 40.00 of 80.00.
    booking = paid_booking(days_ahead=1.25)
    page = signed_in(requester).get(f"/admin/bookings/booking/{booking.pk}/refund/")
    assert b"50%: \xe2\x82\xac40.00" in page.content
    approval = waiting_refund(requester, "40.01", booking)
    assert approval.beyond_policy
    assert Refund.objects.count() == 0


@override_settings(REFUND_APPROVAL_THRESHOLD="eur=5000")
def test_the_requester_cannot_approve_their_own(stripe_sandbox, requester) -> None:
    approval = waiting_refund(requester)
    browser = signed_in(requester)

    answer = decide(browser, "approve_selected", approval)

    assert shown_messages(answer) == [
        f"Approval {approval.pk}: You asked for this refund: another Finance member must "
        "approve it."
    ]
    approval.refresh_from_db()
    assert (approval.status, approval.refund) == ("pending", None)
    assert Refund.objects.count() == 0
    refused = AuditEntry.objects.get(action="payments.refund.approval_refused")
    assert (refused.actor_id, refused.data["own_request"]) == (str(requester.pk), True)
    # The database refuses it too, whatever code tries.
    with pytest.raises(IntegrityError), transaction.atomic():
        RefundApproval.objects.filter(pk=approval.pk).update(
            status="approved", decided_by=requester
        )


@override_settings(REFUND_APPROVAL_THRESHOLD="eur=5000")
def test_another_member_approves_and_stripe_refunds(stripe_sandbox, requester, approver) -> None:
    approval = waiting_refund(requester)
    browser = signed_in(approver)

    listed = browser.get(LIST)
    assert listed.status_code == 200
    assert b"\xe2\x82\xac60.00" in listed.content
    answer = decide(browser, "approve_selected", approval)

    assert shown_messages(answer) == [
        f"Approval {approval.pk}: Refunded €60.00: Stripe reports the refund succeeded."
    ]
    approval.refresh_from_db()
    assert (approval.status, approval.decided_by) == ("approved", approver)
    assert approval.refund.status == Refund.Status.SUCCEEDED
    assert approval.refund.requested_by == approver
    assert refunded_at_stripe(approval.payment.booking) == 6000
    approved = AuditEntry.objects.get(action="payments.refund.approved")
    assert (approved.actor_id, approved.data["requested_by"]) == (
        str(approver.pk),
        requester.pk,
    )
    # Once decided, a second approval changes nothing.
    again = decide(browser, "approve_selected", approval)
    assert "was approved already" in shown_messages(again)[0]
    assert Refund.objects.count() == 1


@override_settings(REFUND_APPROVAL_THRESHOLD="eur=5000")
def test_approving_needs_a_step_up_and_the_permission(stripe_sandbox, requester) -> None:
    approval = waiting_refund(requester)
    not_stepped_up = Client()
    not_stepped_up.force_login(member("fin-three@slotpay.example", *FINANCE))
    issuer_only = signed_in(member("issuer@slotpay.example", "view_refundapproval", "issue_refund"))

    redirected = not_stepped_up.post(
        LIST, {"action": "approve_selected", "_selected_action": [str(approval.pk)]}
    )
    assert redirected.status_code == 302
    assert redirected["Location"].startswith("/accounts/step-up/")
    # The action is not on offer without payments.approve_refund.
    forged = decide(issuer_only, "approve_selected", approval)
    assert b"No action selected." in forged.content

    approval.refresh_from_db()
    assert approval.status == "pending"
    assert Refund.objects.count() == 0


@override_settings(REFUND_APPROVAL_THRESHOLD="eur=5000")
def test_a_rejected_refund_never_reaches_stripe(stripe_sandbox, requester, approver) -> None:
    approval = waiting_refund(requester)

    answer = decide(signed_in(approver), "reject_selected", approval)

    assert shown_messages(answer) == [f"Approval {approval.pk}: rejected; nothing was refunded."]
    approval.refresh_from_db()
    assert (approval.status, approval.decided_by) == ("rejected", approver)
    assert decide(signed_in(approver), "approve_selected", approval).status_code == 200
    assert Refund.objects.count() == 0
    assert refunded_at_stripe(approval.payment.booking) == 0
    assert AuditEntry.objects.filter(action="payments.refund.rejected").count() == 1


@override_settings(REFUND_APPROVAL_THRESHOLD="eur=5000")
def test_waiting_refunds_are_listed_first(stripe_sandbox, requester, approver) -> None:
    first = waiting_refund(requester)
    decide(signed_in(approver), "reject_selected", first)
    second = waiting_refund(requester, "70.00", first.payment.booking)

    listed = signed_in(approver).get(LIST)

    assert [a.pk for a in listed.context["cl"].result_list] == [second.pk, first.pk]


@pytest.mark.connections
@pytest.mark.postgres
@override_settings(REFUND_APPROVAL_THRESHOLD="eur=5000")
def test_two_approvers_at_once_refund_once(stripe_sandbox, requester, approver) -> None:
    approval = waiting_refund(requester)
    third = member("fin-three@slotpay.example", *FINANCE)
    browsers = [signed_in(approver), signed_in(third)]

    answers = together(2, lambda i: decide(browsers[i], "approve_selected", approval))

    assert [a for a in answers if isinstance(a, Exception)] == []
    said = sorted(shown_messages(a)[0] for a in answers)
    assert said == [
        f"Approval {approval.pk}: Refunded €60.00: Stripe reports the refund succeeded.",
        f"Approval {approval.pk}: This refund was approved already.",
    ]
    assert list(Refund.objects.values_list("amount", "status")) == [(6000, "succeeded")]
    assert refunded_at_stripe(approval.payment.booking) == 6000
    assert Payment.objects.get().refundable() == 2000


# --- The threshold setting ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "paid", "needs"),
    [
        (10000, "eur", 20000, False),
        (10001, "eur", 20000, True),
        (15000, "jpy", 20000, False),
        (100, "aud", 20000, True),  # no entry for it and no share: fail closed
    ],
)
def test_the_default_threshold(amount, currency, paid, needs) -> None:
    threshold = Threshold.parse("eur=10000,usd=10000,gbp=10000,chf=10000,jpy=15000")
    assert threshold.exceeded_by(amount=amount, currency=currency, paid=paid) is needs


def test_a_share_of_the_payment_applies_to_every_currency() -> None:
    threshold = Threshold.parse("eur=10000, 50%")
    assert not threshold.exceeded_by(amount=4000, currency="eur", paid=8000)
    assert threshold.exceeded_by(amount=4001, currency="eur", paid=8000)
    assert threshold.exceeded_by(amount=10001, currency="eur", paid=100000)
    assert not threshold.exceeded_by(amount=500, currency="aud", paid=1000)
    assert Threshold.parse("12.5%").exceeded_by(amount=126, currency="usd", paid=1000)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "eur",
        "eur=",
        "EUR=100",
        "eur=-5",
        "eur=1.5",
        "eur=10,,usd=5",
        "eur=1,eur=2",
        "150%",
        "10%,20%",
        "x%",
        "eur=10000;usd=1",
    ],
)
def test_a_malformed_threshold_fails_the_system_check(value) -> None:
    with pytest.raises(ThresholdError):
        Threshold.parse(value)
    with (
        override_settings(REFUND_APPROVAL_THRESHOLD=value),
        pytest.raises(SystemCheckError, match=r"payments\.E001"),
    ):
        call_command("check")


def test_the_default_threshold_passes_the_check() -> None:
    call_command("check")


def test_a_refund_approval_needs_finance(stripe_sandbox) -> None:
    """Support's hand-made POST to the approvals list is refused."""
    support = member("support@slotpay.example", "view_booking", "view_payment")
    browser = Client()
    browser.force_login(support)
    step_up(browser)
    assert browser.get(LIST).status_code == 403
    assert browser.post(LIST, {"action": "approve_selected"}).status_code == 403


@override_settings(REFUND_APPROVAL_THRESHOLD="eur=5000")
def test_the_requester_may_withdraw_their_own(stripe_sandbox) -> None:
    issuer = member("issuer@slotpay.example", "view_booking", "view_refundapproval", "issue_refund")
    approval = waiting_refund(issuer)
    browser = signed_in(issuer)

    answer = decide(browser, "reject_selected", approval)

    assert shown_messages(answer) == [f"Approval {approval.pk}: rejected; nothing was refunded."]
    approval.refresh_from_db()
    assert (approval.status, approval.decided_by) == ("rejected", issuer)
    withdrawn = AuditEntry.objects.get(action="payments.refund.withdrawn")
    assert withdrawn.actor_id == str(issuer.pk)
    assert Refund.objects.count() == 0
