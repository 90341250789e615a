"""Staff cancel a booking for the client when the provider is at fault: the Calendly
event is cancelled and everything paid comes back, whatever the policy says.

Through the admin over HTTP; Calendly and Stripe are the sandboxes on the live server.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.test import override_settings

from audit.models import AuditEntry
from bookings.models import Booking
from payments.models import Refund, RefundApproval
from sandbox.calendly_sandbox.models import Invitee
from tests.bookings.test_cancel_attribution import proxy
from tests.bookings.world import PRICE, World, world
from tests.payments.test_approvals import decide
from tests.payments.test_backoffice_refunds import (
    FINANCE,
    member,
    shown_messages,
    signed_in,
    submit,
)
from tests.support.concurrency import together

__all__ = ["proxy", "world"]

pytestmark = pytest.mark.django_db(transaction=True)

CANCELER = ("view_booking", "cancel_for_client")


def _paid(world: World, hours_ahead: float = 30) -> Any:
    # 30 hours ahead (the default here): the default policy would give back only half.
    slot = world.book(hours_ahead=hours_ahead)
    world.pay(slot)
    world.deliver()
    world.retry_waiting()
    assert slot.booking.status == Booking.Status.CONFIRMED
    return slot


def cancel_page(booking: Booking) -> str:
    return f"/admin/bookings/booking/{booking.pk}/cancel-for-client/"


def test_within_the_policy_and_threshold_the_full_refund_is_made_at_once(world: World) -> None:
    slot = _paid(world, hours_ahead=24 * 10)  # ten days ahead: the policy gives it all
    booking = slot.booking
    staff = member("finance@slotpay.example", *CANCELER)
    browser = signed_in(staff)

    change = browser.get(f"/admin/bookings/booking/{booking.pk}/change/")
    assert cancel_page(booking).encode() in change.content
    page = browser.get(cancel_page(booking))
    assert b"\xe2\x82\xac80.00" in page.content
    answer = browser.post(cancel_page(booking), {"reason": "The builder is ill"}, follow=True)

    assert shown_messages(answer) == [
        f"Booking {booking.pk} is canceled for the client; €80.00 refunded in full."
    ]
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.CANCELED
    assert Invitee.objects.get(pk=slot.invitee.pk).status == Invitee.Status.CANCELED
    world.settle_everything()  # Calendly's invitee.canceled comes, and changes nothing
    assert world.state(slot)["refunds"] == [(PRICE, "succeeded", False)]
    assert RefundApproval.objects.count() == 0
    assert world.dead_or_failed() == []
    entry = AuditEntry.objects.get(action="bookings.booking.canceled_for_client")
    assert (entry.actor_id, entry.data["reason"], entry.data["refunded"]) == (
        str(staff.pk),
        "The builder is ill",
        PRICE,
    )
    canceled = AuditEntry.objects.get(action="bookings.booking.canceled")
    assert canceled.actor_id == str(staff.pk)


def test_beyond_the_policy_the_full_refund_waits_for_another_finance_member(
    world: World,
) -> None:
    slot = _paid(world)  # the policy gives half: a full refund goes beyond it
    booking = slot.booking
    clerk = member("finance@slotpay.example", *FINANCE, "cancel_for_client")
    answer = signed_in(clerk).post(cancel_page(booking), {"reason": "Builder ill"}, follow=True)

    approval = RefundApproval.objects.get()
    link = f"/admin/payments/refundapproval/{approval.pk}/change/"
    assert shown_messages(answer) == [
        f"Booking {booking.pk} is canceled for the client; the full refund of €80.00 waits "
        f'for another Finance member\'s approval (<a href="{link}">approval {approval.pk}</a>)'
        ": nothing was sent to Stripe yet."
    ]
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.CANCELED
    assert Invitee.objects.get(pk=slot.invitee.pk).status == Invitee.Status.CANCELED
    assert (approval.amount, approval.requested_by, approval.beyond_policy) == (
        PRICE,
        clerk,
        True,
    )
    assert approval.reason == "canceled for the client: Builder ill"
    world.settle_everything()  # Calendly's invitee.canceled: still waiting, nothing paid back
    assert Refund.objects.count() == 0
    entry = AuditEntry.objects.get(action="bookings.booking.canceled_for_client")
    assert (entry.data["refunded"], entry.data["awaiting_approval"]) == (0, PRICE)

    # The client is told a refund is being reviewed, not that €80.00 is on its way.
    [email] = [m for m in mail.outbox if "canceled" in m.subject]
    assert "A refund of €80.00 is being reviewed" in email.body
    assert "Refund: €80.00" not in email.body

    # Nor can the clerk refund beside it from the refund page meanwhile, in full or in
    # part: one decision at a time, the approver's.
    for amount in ("80.00", "50.00"):
        page = submit(signed_in(clerk), booking, amount, "Meanwhile")
        assert "A refund of €80.00 of this payment waits for approval" in page.content.decode()
    assert Refund.objects.count() == 0
    assert RefundApproval.objects.count() == 1

    # The clerk cannot approve their own; another Finance member can.
    own = decide(signed_in(clerk), "approve_selected", approval)
    assert "another Finance member must approve it" in shown_messages(own)[0]
    other = member("fin-two@slotpay.example", *FINANCE)
    approved = decide(signed_in(other), "approve_selected", approval)
    assert shown_messages(approved) == [
        f"Approval {approval.pk}: Refunded €80.00: Stripe reports the refund succeeded."
    ]
    assert world.state(slot)["refunds"] == [(PRICE, "succeeded", False)]


@override_settings(REFUND_APPROVAL_THRESHOLD="eur=5000")
def test_above_the_threshold_the_full_refund_waits_even_within_the_policy(world: World) -> None:
    slot = _paid(world, hours_ahead=24 * 10)
    answer = signed_in(member("finance@slotpay.example", *CANCELER)).post(
        cancel_page(slot.booking), {"reason": "Studio flooded"}, follow=True
    )

    approval = RefundApproval.objects.get()
    assert "waits for another Finance member's approval" in shown_messages(answer)[0]
    assert (approval.amount, approval.beyond_policy, approval.status) == (PRICE, False, "pending")
    assert Refund.objects.count() == 0
    assert Booking.objects.get(pk=slot.booking.pk).status == Booking.Status.CANCELED


def test_in_full_even_when_calendlys_webhook_comes_first(world: World, proxy) -> None:
    slot = _paid(world, hours_ahead=24 * 10)
    booking = slot.booking
    proxy.then = lambda: world.deliver("invitee.canceled")

    answer = signed_in(member("finance@slotpay.example", *CANCELER)).post(
        cancel_page(booking), {"reason": "No-show by the builder"}
    )

    assert answer.status_code == 302
    refund = Refund.objects.get()
    assert refund.amount == PRICE
    canceled = AuditEntry.objects.get(action="bookings.booking.canceled")
    assert canceled.data["reason"] == "canceled for the client by staff"
    assert AuditEntry.objects.filter(action="bookings.booking.canceled_for_client").count() == 1


def test_calendlys_webhook_first_still_waits_for_approval_beyond_the_policy(
    world: World, proxy
) -> None:
    slot = _paid(world)
    proxy.then = lambda: world.deliver("invitee.canceled")

    answer = signed_in(member("finance@slotpay.example", *CANCELER)).post(
        cancel_page(slot.booking), {"reason": "No-show by the builder"}, follow=True
    )

    assert "waits for another Finance member's approval" in shown_messages(answer)[0]
    assert Refund.objects.count() == 0
    assert RefundApproval.objects.get().amount == PRICE
    assert Booking.objects.get(pk=slot.booking.pk).status == Booking.Status.CANCELED


def test_a_second_cancel_is_told_the_booking_is_canceled_and_not_audited(world: World) -> None:
    slot = _paid(world, hours_ahead=24 * 10)
    browser = signed_in(member("finance@slotpay.example", *CANCELER))
    browser.post(cancel_page(slot.booking), {"reason": "First"})

    again = browser.post(cancel_page(slot.booking), {"reason": "Second"})

    assert again.status_code == 200
    assert b"This booking is canceled" in again.content
    assert Refund.objects.count() == 1
    assert AuditEntry.objects.filter(action="bookings.booking.canceled_for_client").count() == 1


def test_a_cancel_that_stopped_before_its_refund_gets_it_decided_by_a_repeat(
    world: World,
) -> None:
    """The first request cancelled the booking and stopped (a crash) before the refund
    was decided: a repeat is told the booking is canceled, and the decision is made,
    for the member who asked first."""
    slot = _paid(world)
    first = member("fin-one@slotpay.example", *CANCELER)
    second = member("fin-two@slotpay.example", *CANCELER)
    booking = slot.booking
    Booking.objects.filter(pk=booking.pk).update(
        cancel_requested_at=booking.start_at - timedelta(hours=30),
        cancel_requested_by=first,
        cancel_refund_full=True,
    )
    booking.cancel(actor=first, reason="canceled by staff for the client")

    again = signed_in(second).post(cancel_page(booking), {"reason": "Once more"})

    assert b"This booking is canceled already." in again.content
    approval = RefundApproval.objects.get()
    assert (approval.amount, approval.requested_by, approval.beyond_policy) == (
        PRICE,
        first,
        True,
    )
    assert not AuditEntry.objects.filter(action="bookings.booking.canceled_for_client").exists()


@pytest.mark.connections
@pytest.mark.postgres
def test_ten_cancels_at_once_cancel_and_audit_once(world: World) -> None:
    slot = _paid(world, hours_ahead=24 * 10)
    browsers = [signed_in(member(f"fin{i}@slotpay.example", *CANCELER)) for i in range(10)]

    answers = together(
        10, lambda i: browsers[i].post(cancel_page(slot.booking), {"reason": f"Reason {i}"})
    )

    assert sorted(a.status_code for a in answers) == [200] * 9 + [302]
    for answer in answers:
        if answer.status_code == 200:
            assert b"This booking is" in answer.content
    assert list(Refund.objects.values_list("amount", flat=True)) == [PRICE]
    [entry] = AuditEntry.objects.filter(action="bookings.booking.canceled_for_client")
    assert entry.data["refunded"] == PRICE
    assert AuditEntry.objects.filter(action="bookings.booking.canceled").count() == 1


def test_it_needs_the_permission_a_step_up_and_a_reason(world: World) -> None:
    slot = _paid(world)
    booking = slot.booking
    support = signed_in(member("support@slotpay.example", "view_booking"))
    not_stepped_up = signed_in(member("f1@slotpay.example", *CANCELER), stepped_up=False)
    stepped_up = signed_in(member("f2@slotpay.example", *CANCELER))

    assert (
        cancel_page(booking).encode()
        not in support.get(f"/admin/bookings/booking/{booking.pk}/change/").content
    )
    assert support.get(cancel_page(booking)).status_code == 403
    assert support.post(cancel_page(booking), {"reason": "x"}).status_code == 403
    redirected = not_stepped_up.post(cancel_page(booking), {"reason": "x"})
    assert redirected["Location"].startswith("/accounts/step-up/")
    no_reason = stepped_up.post(cancel_page(booking), {"reason": "  "})
    assert no_reason.status_code == 200
    assert b"This field is required." in no_reason.content

    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.CONFIRMED
    assert Invitee.objects.get(pk=slot.invitee.pk).status == Invitee.Status.ACTIVE
    assert Refund.objects.count() == 0
