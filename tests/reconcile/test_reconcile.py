"""Reconciliation end to end: drift made on purpose in the sandboxes is repaired
through the webhook inbox where it can be, and listed for a person where not."""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import AuditEntry
from bookings import calendly_webhooks, reconcile
from bookings.models import Booking, Drift
from sandbox import delivery
from sandbox.calendly_sandbox.models import Invitee
from sandbox.calendly_sandbox.resources import invitee_resource
from sandbox.models import Delivery
from tests.bookings.world import PRICE, Slot, World
from tests.reconcile.drift import (
    cancel_in_calendly_undelivered,
    pay_a_session_we_have_no_booking_for,
    pay_while_our_endpoint_is_down,
    refund_in_the_dashboard_and_lose_its_delivery,
)
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db(transaction=True)

RECONCILED = WebhookEvent.Source.RECONCILIATION


def open_drift() -> dict[str, int]:
    kinds = Drift.objects.filter(resolved_at__isnull=True).values_list("kind", flat=True)
    return {kind: list(kinds).count(kind) for kind in set(kinds)}


def _assert_listed(stranger_session: str, mismatch: Slot, refunded: Slot) -> None:
    no_booking = Drift.objects.get(kind="paid_no_booking")
    assert no_booking.provider_ids["checkout_session"] == stranger_session
    assert (no_booking.booking, no_booking.amount_actual) == (None, PRICE)
    wrong = Drift.objects.get(kind="amount_mismatch")
    assert (wrong.booking, wrong.amount_expected, wrong.amount_actual) == (
        mismatch.booking,
        PRICE + 1000,
        PRICE,
    )
    assert Drift.objects.get(kind="refunded_but_active").payment == refunded.payment


def test_missed_events_are_fed_through_the_inbox_and_the_rest_is_listed(
    world: World, settings: Any
) -> None:
    refunded, canceled = world.book(), world.book()
    world.pay(refunded)
    world.pay(canceled)
    world.settle_everything()
    assert world.state(refunded)["booking"] == world.state(canceled)["booking"] == "confirmed"

    late = world.book()
    pay_while_our_endpoint_is_down(world, late, settings)
    lost = refund_in_the_dashboard_and_lose_its_delivery(refunded.payment, 3000)
    cancel_in_calendly_undelivered(world, canceled)
    stranger_session = pay_a_session_we_have_no_booking_for()
    mismatch = world.book()
    Booking.objects.filter(pk=mismatch.booking.pk).update(price_amount=PRICE + 1000)
    world.pay(mismatch)
    world.settle_everything()
    # What our records say before reconciling: all three behind the providers.
    assert world.state(late) == {"booking": "pending_payment", "payments": ["open"], "refunds": []}
    assert world.state(refunded)["refunds"] == []
    assert world.state(canceled)["booking"] == "confirmed"

    report = reconcile.reconcile()

    fed = {(item.provider, item.event_type): item.status for item in report.fed}
    assert fed[("stripe", "checkout.session.completed")] == "processed"
    assert fed[("stripe", "charge.refunded")] == "processed"
    assert fed[("calendly", "invitee.canceled")] == "processed"
    assert set(lost) <= {item.event_id for item in report.fed}
    # The Calendly item carries the dedup key Calendly's own delivery would have had.
    delivered = {
        "event": "invitee.canceled",
        "created_at": "2026-11-30T10:00:00.000000Z",
        "payload": invitee_resource(
            Invitee.objects.get(pk=canceled.invitee.pk), world.site.urls, webhook=True
        ),
    }
    assert calendly_webhooks.envelope(delivered).event_id in {f.event_id for f in report.fed}
    assert all(
        row.source == RECONCILED
        for row in WebhookEvent.objects.filter(event_id__in=[f.event_id for f in report.fed])
    )
    # Repaired: the payment confirmed the booking, the dashboard refund is recorded,
    # the Calendly cancellation cancelled the booking and refunded it by the policy.
    assert world.state(late) == {"booking": "confirmed", "payments": ["paid"], "refunds": []}
    assert world.state(refunded) == {
        "booking": "confirmed",
        "payments": ["partially_refunded"],
        "refunds": [(3000, "succeeded", True)],
    }
    assert world.state(canceled) == {
        "booking": "canceled",
        "payments": ["refunded"],
        "refunds": [(PRICE, "succeeded", False)],
    }
    # Listed for a person: what no event can repair.
    assert open_drift() == {
        "paid_no_booking": 1,
        "amount_mismatch": 1,
        "refunded_but_active": 1,
    }
    _assert_listed(stranger_session, mismatch, refunded)
    run = AuditEntry.objects.filter(action="bookings.reconcile.ran").get()
    assert run.data["fed"] == len(report.fed)
    assert run.data["open"] == open_drift()
    assert AuditEntry.objects.filter(action="bookings.drift.found").count() == 3

    # The provider delivers late after all: a duplicate, stored once.
    for failed in Delivery.objects.filter(status=Delivery.Status.FAILED, provider="stripe"):
        assert delivery.attempt(failed).status_code == 200
    for item in report.fed:
        assert WebhookEvent.objects.filter(event_id=item.event_id).count() == 1

    # Again, once the providers' own deliveries are in: nothing is fed twice, the same
    # drift is seen again (one row each, seen later), nothing new.
    world.settle_everything()
    first_seen = dict(Drift.objects.values_list("key", "last_seen_at"))
    again = reconcile.reconcile()
    assert again.fed == []
    assert (again.opened, again.resolved) == (0, 0)
    assert open_drift() == {"paid_no_booking": 1, "amount_mismatch": 1, "refunded_but_active": 1}
    assert all(row.last_seen_at > first_seen[row.key] for row in Drift.objects.all())

    # A person puts the price right: the next run resolves that finding.
    Booking.objects.filter(pk=mismatch.booking.pk).update(price_amount=PRICE)
    fixed = reconcile.reconcile()
    assert fixed.resolved == 1
    assert Drift.objects.get(kind="amount_mismatch").resolved_at is not None
    assert open_drift() == {"paid_no_booking": 1, "refunded_but_active": 1}
