"""Listing events for reconciliation: filters and pagination."""

from datetime import timedelta

import pytest
from django.utils import timezone

from payments import stripe_gateway
from sandbox.stripe_sandbox.models import StripeObject
from tests.sandbox.stripe.helpers import new_session

pytestmark = pytest.mark.django_db(transaction=True)


def _expired_sessions(count: int) -> list[str]:
    ids = []
    for number in range(count):
        session = new_session(f"bk_ev_{number}")
        stripe_gateway.expire_checkout_session(session.id)
        ids.append(session.id)
    return ids


def test_events_come_newest_first_in_pages(stripe_sandbox):
    session_ids = _expired_sessions(5)

    first = stripe_gateway.list_events(limit=2)
    second = stripe_gateway.list_events(limit=2, starting_after=first.last_id)
    third = stripe_gateway.list_events(limit=2, starting_after=second.last_id)

    assert (first.has_more, second.has_more, third.has_more) == (True, True, False)
    listed = [event.data_object["id"] for page in (first, second, third) for event in page.events]
    assert listed == list(reversed(session_ids))
    assert {event.type for event in first.events} == {"checkout.session.expired"}


def test_iterating_walks_every_page(stripe_sandbox):
    _expired_sessions(3)

    events = list(stripe_gateway.iter_events(page_size=1))

    assert len(events) == 3
    assert len({event.id for event in events}) == 3
    assert all(event.id.startswith("evt_") for event in events)


def test_events_filter_by_type_and_time(stripe_sandbox):
    _expired_sessions(2)
    old = StripeObject.objects.filter(object="event").order_by("seq").first()
    old.data["created"] -= 3600
    old.save()

    recent = stripe_gateway.list_events(
        type="checkout.session.expired", created_gte=timezone.now() - timedelta(minutes=10)
    )
    none = stripe_gateway.list_events(type="charge.refunded")

    assert [event.id for event in recent.events] != []
    assert old.id not in {event.id for event in recent.events}
    assert len(recent.events) == 1
    assert none.events == []


def test_a_single_event_can_be_read(stripe_sandbox):
    _expired_sessions(1)
    listed = stripe_gateway.list_events().events[0]

    assert stripe_gateway.retrieve_event(listed.id) == listed
    assert listed.api_version == stripe_gateway.API_VERSION
