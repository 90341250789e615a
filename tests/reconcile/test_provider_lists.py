"""The lists reconciliation walks, through the gateways, against the sandboxes over
HTTP: Stripe's Checkout Sessions and refunds as Stripe answers them (newest first,
``has_more``, ``starting_after``, ``created`` ranges), Calendly's scheduled events and
invitees by start time and status."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests
from django.conf import settings
from django.utils import timezone

from bookings.calendly import CalendlyClient, InvalidRequest
from payments import stripe_gateway
from sandbox.calendly_sandbox import services as calendly_sandbox
from sandbox.calendly_sandbox.resources import Urls
from sandbox.stripe_sandbox.models import StripeObject
from tests.sandbox.stripe.helpers import new_session, paid_session

pytestmark = pytest.mark.django_db(transaction=True)


def _get(base: str, path: str, **params: Any) -> requests.Response:
    return requests.get(
        f"{base}{path}",
        params=params,
        headers={"Authorization": f"Bearer {settings.STRIPE_API_KEY}"},
        timeout=10,
    )


def test_checkout_sessions_come_newest_first_in_pages(stripe_sandbox: str) -> None:
    made = [new_session(f"bk_list_{number}").id for number in range(5)]

    first = stripe_gateway.list_checkout_sessions(limit=2)
    second = stripe_gateway.list_checkout_sessions(limit=2, starting_after=first.last_id)
    third = stripe_gateway.list_checkout_sessions(limit=2, starting_after=second.last_id)

    assert (first.has_more, second.has_more, third.has_more) == (True, True, False)
    listed = [s.id for page in (first, second, third) for s in page.items]
    assert listed == list(reversed(made))
    assert [s.id for s in stripe_gateway.iter_checkout_sessions(page_size=2)] == listed


def test_checkout_sessions_filter_by_creation_and_status(stripe_sandbox: str) -> None:
    old, open_one = new_session("bk_old"), new_session("bk_open")
    paid = paid_session("bk_paid_list")
    row = StripeObject.objects.get(id=old.id)
    row.data["created"] -= 7200
    row.save()
    since = timezone.now() - timedelta(hours=1)

    recent = {s.id for s in stripe_gateway.iter_checkout_sessions(created_gte=since)}
    complete = stripe_gateway.list_checkout_sessions(status="complete").items

    assert recent == {open_one.id, paid.id}
    assert [(s.id, s.payment_status) for s in complete] == [(paid.id, "paid")]
    assert complete[0].created is not None
    assert complete[0].created >= since


def test_refunds_list_with_their_charge(stripe_sandbox: str) -> None:
    session = paid_session("bk_refund_list")
    intent = stripe_gateway.retrieve_payment_intent(session.payment_intent_id or "")
    first = stripe_gateway.create_refund(refund_ref="rf_a", payment_intent=intent.id, amount=100)
    second = stripe_gateway.create_refund(refund_ref="rf_b", payment_intent=intent.id, amount=200)
    paid_session("bk_other")

    page = stripe_gateway.list_refunds(limit=1)
    rest = stripe_gateway.list_refunds(limit=1, starting_after=page.last_id)
    by_charge = stripe_gateway.list_refunds(charge=intent.latest_charge_id)

    assert ([r.id for r in page.items], page.has_more) == ([second.id], True)
    assert ([r.id for r in rest.items], rest.has_more) == ([first.id], False)
    assert [(r.id, r.amount, r.charge_id) for r in by_charge.items] == [
        (second.id, 200, intent.latest_charge_id),
        (first.id, 100, intent.latest_charge_id),
    ]
    assert [r.id for r in stripe_gateway.iter_refunds(page_size=1)] == [second.id, first.id]
    assert by_charge.items[0].created is not None


def test_the_sandbox_answers_lists_in_stripes_shape(stripe_sandbox: str) -> None:
    new_session("bk_shape")
    sessions = _get(stripe_sandbox, "/v1/checkout/sessions", limit=1).json()
    refunds = _get(stripe_sandbox, "/v1/refunds").json()
    too_many = _get(stripe_sandbox, "/v1/refunds", limit=101)
    unknown = _get(stripe_sandbox, "/v1/checkout/sessions", colour="blue")
    bad_cursor = _get(stripe_sandbox, "/v1/refunds", starting_after="re_nothing")

    assert {k: sessions[k] for k in ("object", "url", "has_more")} == {
        "object": "list",
        "url": "/v1/checkout/sessions",
        "has_more": False,
    }
    assert sessions["data"][0]["object"] == "checkout.session"
    assert refunds == {"object": "list", "data": [], "has_more": False, "url": "/v1/refunds"}
    assert (too_many.status_code, too_many.json()["error"]["param"]) == (400, "limit")
    assert (unknown.status_code, unknown.json()["error"]["param"]) == (400, "colour")
    assert (bad_cursor.status_code, bad_cursor.json()["error"]["code"]) == (
        404,
        "resource_missing",
    )


def test_stripe_filters_events_on_several_types(stripe_sandbox: str) -> None:
    session = new_session("bk_types")
    stripe_gateway.expire_checkout_session(session.id)
    paid_session("bk_types_paid")

    both = stripe_gateway.list_events(
        types=["checkout.session.expired", "checkout.session.completed"]
    )
    one = stripe_gateway.list_events(types=["checkout.session.expired"])

    assert [e.type for e in both.events] == [
        "checkout.session.completed",
        "checkout.session.expired",
    ]
    assert [e.data_object["id"] for e in one.events] == [session.id]
    assert one.events[0].body["id"] == one.events[0].id
    assert one.events[0].body["data"]["object"]["id"] == session.id


def _book(event_type: Any, hours: int, email: str) -> Any:
    start = next(
        s
        for s in calendly_sandbox.open_slots(event_type)
        if s >= timezone.now() + timedelta(hours=hours)
    )
    return calendly_sandbox.invitee_book(
        event_type=event_type,
        start=start,
        name="Clara Client",
        email=email,
        invitee_timezone="Europe/Berlin",
        urls=Urls(site="https://slotpay.example"),
    )


def test_calendly_lists_events_by_start_and_status(
    event_type: Any, calendly: CalendlyClient, live_server: Any
) -> None:
    urls = Urls(site=live_server.url)
    soon, later, gone = (
        _book(event_type, 24, "a@client.example"),
        _book(event_type, 96, "b@client.example"),
        _book(event_type, 48, "c@client.example"),
    )
    assert calendly_sandbox.invitee_cancel(invitee=gone, reason="No longer", urls=urls)
    organization = calendly.current_user().current_organization

    everything = calendly.list_scheduled_events(organization=organization, count=1)
    canceled = calendly.list_scheduled_events(organization=organization, status="canceled")
    from_two_days = calendly.list_scheduled_events(
        organization=organization, min_start_time=gone.scheduled_event.start_time
    )

    assert [e.uuid for e in everything] == [
        soon.scheduled_event.uuid,
        gone.scheduled_event.uuid,
        later.scheduled_event.uuid,
    ]
    assert [(e.uuid, e.status) for e in canceled] == [(gone.scheduled_event.uuid, "canceled")]
    assert (canceled[0].invitees_total, canceled[0].invitees_active) == (1, 0)
    assert [e.uuid for e in from_two_days] == [
        gone.scheduled_event.uuid,
        later.scheduled_event.uuid,
    ]
    invitees = calendly.list_event_invitees(canceled[0].uri, status="canceled")
    assert [(i.uuid, i.status) for i in invitees] == [(gone.uuid, "canceled")]
    assert invitees[0].cancellation is not None
    assert calendly.list_event_invitees(canceled[0].uri, status="active") == []
    with pytest.raises(InvalidRequest):
        calendly.list_scheduled_events()
