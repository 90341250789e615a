"""The sandbox's webhooks reach our real endpoints, over real HTTP (``live_server``).

The site, both provider API bases and the Stripe sandbox's webhook URL all point at
the live server, as they do on ``make run``: a payment or a booking in the sandbox
is signed and posted by ``sandbox.delivery`` to ``/webhooks/<provider>/<token>/``,
verified there, stored once and handed to the (recording) handler.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import pytest
import requests
from django.core.management import call_command
from django.test import Client

from bookings.calendly import CalendlyClient
from sandbox.calendly_sandbox import services
from sandbox.calendly_sandbox.models import EventType, Host, WebhookSubscription
from sandbox.models import Delivery
from tests.bookings.helpers import book
from tests.conftest import Site
from tests.sandbox.stripe.helpers import new_session, pay
from tests.webhooks.conftest import Recorder
from webhooks.models import WebhookEvent, WebhookRejection

pytestmark = pytest.mark.django_db(transaction=True)

EVENTS = ["invitee.created", "invitee.canceled", "invitee_no_show.created"]


@pytest.fixture
def calendly(site: Site) -> Iterator[CalendlyClient]:
    with CalendlyClient() as client:
        yield client


@pytest.fixture
def event_type(site: Site) -> EventType:
    return services.host_with_event_type_create(
        host_name="Ada Builder",
        host_email="ada@builder.example",
        host_slug="ada",
        host_timezone="Europe/Berlin",
        event_name="30 Minute Meeting",
        event_slug="30min",
        duration=30,
    )


def subscribe(calendly: CalendlyClient, url: str) -> None:
    """Subscribe the organization to ``url`` as the bookings app would: over the API."""
    me = calendly.current_user()
    calendly.create_webhook_subscription(
        url, EVENTS, organization=me.current_organization, scope="organization"
    )


def answers(item: Delivery) -> list[int | None]:
    return [attempt.status_code for attempt in item.attempt_log.all()]


def outcome(item: Delivery, number: int = -1) -> str:
    """What our endpoint said to one attempt: stored, duplicate or ignored."""
    excerpt = list(item.attempt_log.all())[number].response_excerpt
    found = re.search(r'"status": "(\w+)"', excerpt)
    return found.group(1) if found else excerpt


# --- Stripe ---------------------------------------------------------------------------------


def test_a_paid_checkout_session_is_delivered_stored_and_handled_once(site, handlers: Recorder):
    session = new_session("bk_e2e_4242")

    paid = pay(session.url, "4242 4242 4242 4242")
    sent = site.deliver()

    assert paid.status_code == 303, paid.content[:300]
    assert sent, "the sandbox sent nothing"
    assert {item.url for item in sent} == {site.endpoint("stripe")}
    assert all(answers(item) == [200] for item in sent), [(d.event_type, answers(d)) for d in sent]
    assert all(item.status == Delivery.Status.DELIVERED for item in sent)
    completed = next(item for item in sent if item.event_type == "checkout.session.completed")
    assert outcome(completed) == "stored"
    # What has no handler is acknowledged and not kept.
    for item in sent:
        if item.event_type not in ("checkout.session.completed", "charge.refunded"):
            assert outcome(item) == "ignored"
    stored = WebhookEvent.objects.get()
    assert (stored.provider, stored.event_id, stored.event_type) == (
        "stripe",
        completed.event_id,
        "checkout.session.completed",
    )
    assert stored.status == WebhookEvent.Status.PROCESSED
    assert handlers.ids() == [completed.event_id]
    assert handlers.calls[0].object_id == session.id
    assert handlers.calls[0].data["data"]["object"]["payment_status"] == "paid"
    assert not WebhookRejection.objects.exists()


def operator(staff) -> Client:
    """The sandbox's dashboards are for the operator, a superuser (sandbox/access.py)."""
    browser = Client()
    browser.force_login(staff)
    return browser


def test_a_redelivery_from_the_sandbox_dashboard_is_a_duplicate(site, handlers, staff):
    session = new_session("bk_e2e_again")
    pay(session.url)
    completed = next(d for d in site.deliver() if d.event_type == "checkout.session.completed")

    queued = operator(staff).post(f"/sandbox/deliveries/{completed.pk}/redeliver/")
    again = next(d for d in site.deliver() if d.pk == completed.pk)

    assert queued.status_code == 302
    assert answers(again) == [200, 200]
    assert [outcome(again, 0), outcome(again, 1)] == ["stored", "duplicate"]
    assert WebhookEvent.objects.filter(provider="stripe").count() == 1
    assert handlers.ids() == [completed.event_id]


def test_a_wrong_stripe_secret_is_refused_and_retried_by_the_sandbox(site, handlers, settings):
    """The sandbox signs with STRIPE_WEBHOOK_SECRETS[0]: after a rotation on our side
    only, its deliveries are 400 (and it keeps trying), until the secret is back."""
    signing = list(settings.STRIPE_WEBHOOK_SECRETS)
    pay(new_session("bk_e2e_rotated").url)  # queued, signed with signing[0]
    settings.STRIPE_WEBHOOK_SECRETS = ["sandbox-fake-rotated-secret"]  # pragma: allowlist secret

    refused = next(d for d in site.deliver() if d.event_type == "checkout.session.completed")
    settings.STRIPE_WEBHOOK_SECRETS = ["sandbox-fake-rotated-secret", *signing]
    accepted = next(d for d in site.deliver() if d.pk == refused.pk)

    assert answers(refused) == [400]
    assert refused.status == Delivery.Status.PENDING
    assert answers(accepted) == [400, 200]
    assert accepted.status == Delivery.Status.DELIVERED
    assert WebhookRejection.objects.get().reason == "signature_mismatch"
    assert handlers.ids() == [accepted.event_id]


# --- Calendly --------------------------------------------------------------------------------


def test_a_booking_and_its_cancellation_are_delivered_and_stored(
    site, calendly, event_type, handlers: Recorder
):
    subscribe(calendly, site.endpoint("calendly"))

    invitee = book(site, event_type)
    created = site.deliver()
    services.invitee_cancel(invitee=invitee, reason="Something came up", urls=site.urls)
    sent = site.deliver()

    assert [d.event_type for d in created] == ["invitee.created"]
    assert [(d.event_type, d.url, answers(d)) for d in sent] == [
        ("invitee.created", site.endpoint("calendly"), [200]),
        ("invitee.canceled", site.endpoint("calendly"), [200]),
    ]
    assert [outcome(d) for d in sent] == ["stored", "stored"]
    stored = WebhookEvent.objects.filter(provider="calendly").order_by("id")
    assert [(e.event_type, e.event_id, e.status) for e in stored] == [
        ("invitee.created", f"invitee.created:{invitee.uuid}", "processed"),
        ("invitee.canceled", f"invitee.canceled:{invitee.uuid}", "processed"),
    ]
    assert handlers.ids() == [
        f"invitee.created:{invitee.uuid}",
        f"invitee.canceled:{invitee.uuid}",
    ]
    assert handlers.calls[0].data["payload"]["email"] == "clara@client.example"
    assert not WebhookRejection.objects.exists()


def test_the_deliveries_page_shows_our_endpoints_answered_200(
    site, calendly, event_type, handlers: Recorder, staff
):
    subscribe(calendly, site.endpoint("calendly"))
    pay(new_session("bk_e2e_page").url)
    book(site, event_type)
    sent = site.deliver()

    cookie = site.settings.SESSION_COOKIE_NAME
    page = requests.get(
        f"{site.url}/sandbox/deliveries/",
        cookies={cookie: operator(staff).cookies[cookie].value},
        timeout=10,
        allow_redirects=False,
    )

    assert {d.provider for d in sent} == {"stripe", "calendly"}
    assert page.status_code == 200
    cells = re.findall(r"<td>((?:\d+: [^<,]*(?:, )?)+|none yet)</td>", page.text)
    assert cells == ["1: 200"] * len(sent), cells
    assert page.text.count("Delivered") >= len(sent)
    for refused in (400, 404, 405):
        assert f": {refused}" not in page.text


# --- demo_setup ------------------------------------------------------------------------------


def demo_setup() -> str:
    out = io.StringIO()
    call_command("demo_setup", stdout=out)
    return out.getvalue()


def ours(site: Site) -> list[WebhookSubscription]:
    prefix = f"{site.url}/webhooks/calendly/"
    return list(WebhookSubscription.objects.filter(callback_url__startswith=prefix))


def test_demo_setup_subscribes_our_calendly_endpoint_once(site, settings, calendly):
    settings.ENVIRONMENT = "development"

    first = demo_setup()
    second = demo_setup()

    (subscription,) = ours(site)
    demo_host = Host.objects.get(slug="demo-studio")
    assert subscription.callback_url == site.endpoint("calendly")
    assert subscription.events == EVENTS
    assert subscription.signing_key == settings.CALENDLY_WEBHOOK_SIGNING_KEYS[0]
    assert (subscription.scope, subscription.state) == ("organization", "active")
    assert subscription.organization == demo_host.organization
    # The sandbox's API lists it, as Calendly would.
    me = calendly.current_user()
    listed = calendly.list_webhook_subscriptions(me.current_organization, "organization")
    assert [s.callback_url for s in listed] == [site.endpoint("calendly")]
    for output in (first, second):
        assert f"Sandbox webhooks: Stripe delivers to {site.url}/webhooks/stripe/" in output
        assert f"Calendly to {site.url}/webhooks/calendly/" in output
        assert settings.CALENDLY_WEBHOOK_PATH_TOKEN not in output
        assert settings.STRIPE_WEBHOOK_PATH_TOKEN not in output
        assert settings.CALENDLY_WEBHOOK_SIGNING_KEYS[0] not in output
    assert "password:" in first
    assert "password:" not in second


def test_demo_setup_follows_a_new_token_and_key_and_leaves_other_subscriptions(site, settings):
    settings.ENVIRONMENT = "development"
    demo_setup()
    (before,) = ours(site)
    elsewhere = WebhookSubscription.objects.create(
        callback_url="https://hooks.example/calendly",
        events=["invitee.created"],
        scope=WebhookSubscription.Scope.ORGANIZATION,
        organization=before.organization,
        signing_key="someone-elses-key-0123456789",
    )
    settings.CALENDLY_WEBHOOK_PATH_TOKEN = "rotated-path-token-0123456789"
    settings.CALENDLY_WEBHOOK_SIGNING_KEYS = ["rotated-signing-key-0123456789", "the-old-one"]
    before.state = WebhookSubscription.State.DISABLED
    before.save(update_fields=["state"])

    demo_setup()

    (after,) = ours(site)
    assert after.pk == before.pk
    assert after.callback_url == f"{site.url}/webhooks/calendly/rotated-path-token-0123456789/"
    assert after.signing_key == "rotated-signing-key-0123456789"
    assert after.state == WebhookSubscription.State.ACTIVE
    elsewhere.refresh_from_db()
    assert elsewhere.callback_url == "https://hooks.example/calendly"
    assert WebhookSubscription.objects.count() == 2


def test_demo_setup_removes_duplicate_subscriptions_to_our_endpoint(site, settings):
    settings.ENVIRONMENT = "development"
    demo_setup()
    (kept,) = ours(site)
    WebhookSubscription.objects.create(
        callback_url=f"{site.url}/webhooks/calendly/an-older-token/",
        events=EVENTS,
        scope=WebhookSubscription.Scope.ORGANIZATION,
        organization=kept.organization,
        signing_key="an-older-key-0123456789",
    )

    demo_setup()

    assert [s.pk for s in ours(site)] == [kept.pk]


def test_a_booking_on_the_demo_page_reaches_our_endpoint(site, settings, handlers: Recorder):
    settings.ENVIRONMENT = "development"
    demo_setup()
    consultation = EventType.objects.get(host__slug="demo-studio", slug="consultation")

    invitee = book(site, consultation)
    (sent,) = site.deliver()

    assert (sent.event_type, sent.url, answers(sent)) == (
        "invitee.created",
        site.endpoint("calendly"),
        [200],
    )
    assert handlers.ids() == [f"invitee.created:{invitee.uuid}"]
