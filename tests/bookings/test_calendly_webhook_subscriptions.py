"""Webhook subscriptions: create (signed with our first key), list, get, delete."""

import pytest

from bookings.calendly import Conflict, InvalidRequest, NotFound
from sandbox.calendly_sandbox.models import WebhookSubscription

pytestmark = pytest.mark.django_db(transaction=True)

EVENTS = ["invitee.created", "invitee.canceled", "invitee_no_show.created"]


def test_a_subscription_is_created_with_our_first_signing_key(calendly, event_type, settings):
    settings.CALENDLY_WEBHOOK_SIGNING_KEYS = ["new-key-0123456789", "old-key-0123456789"]
    me = calendly.current_user()

    created = calendly.create_webhook_subscription(
        "https://slotpay.example/webhooks/calendly/",
        EVENTS,
        organization=me.current_organization,
        user=me.uri,
        scope="user",
    )

    assert created.callback_url == "https://slotpay.example/webhooks/calendly/"
    assert created.events == tuple(EVENTS)
    assert (created.scope, created.state) == ("user", "active")
    assert created.organization == me.current_organization
    assert created.user == me.uri
    assert WebhookSubscription.objects.get(uuid=created.uuid).signing_key == "new-key-0123456789"


def test_subscriptions_are_listed_across_pages_read_and_deleted(calendly, event_type):
    me = calendly.current_user()
    made = [
        calendly.create_webhook_subscription(
            f"https://slotpay.example/hooks/{n}",
            EVENTS,
            organization=me.current_organization,
            scope="organization",
        )
        for n in range(3)
    ]

    listed = calendly.list_webhook_subscriptions(me.current_organization, "organization", count=2)
    assert [s.uuid for s in listed] == [s.uuid for s in made]
    assert calendly.get_webhook_subscription(made[1].uri) == made[1]

    calendly.delete_webhook_subscription(made[1].uri)

    assert calendly.list_webhook_subscriptions(me.current_organization, "organization") == [
        made[0],
        made[2],
    ]
    with pytest.raises(NotFound):
        calendly.delete_webhook_subscription(made[1].uuid)


def test_user_scope_lists_only_that_users_subscriptions(calendly, event_type):
    me = calendly.current_user()
    calendly.create_webhook_subscription(
        "https://slotpay.example/org",
        EVENTS,
        organization=me.current_organization,
        scope="organization",
    )
    mine = calendly.create_webhook_subscription(
        "https://slotpay.example/me",
        EVENTS,
        organization=me.current_organization,
        user=me.uri,
        scope="user",
    )

    assert calendly.list_webhook_subscriptions(me.current_organization, "user", user=me.uri) == [
        mine
    ]


def test_the_same_url_twice_is_a_conflict(calendly, event_type):
    me = calendly.current_user()
    args = ("https://slotpay.example/webhooks/calendly/", EVENTS)
    calendly.create_webhook_subscription(
        *args, organization=me.current_organization, scope="organization"
    )

    with pytest.raises(Conflict) as caught:
        calendly.create_webhook_subscription(
            *args, organization=me.current_organization, scope="organization"
        )

    assert caught.value.status == 409
    assert isinstance(caught.value, InvalidRequest)


def test_an_unknown_event_name_is_an_invalid_request(calendly, event_type):
    me = calendly.current_user()

    with pytest.raises(InvalidRequest) as caught:
        calendly.create_webhook_subscription(
            "https://slotpay.example/hooks",
            ["invitee.exploded"],
            organization=me.current_organization,
            scope="organization",
        )

    assert caught.value.status == 400
    assert caught.value.title == "Invalid Argument"
    assert caught.value.parameters == ("events",)
