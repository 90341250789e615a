"""A builder selling a session, a client buying it: our site and both sandboxes over HTTP.

``World`` drives the flow the way its people do: the client through our pages (the
Django test client, signed in), the Calendly and Stripe sandboxes through their own
pages and services, and the providers' webhooks through our real endpoints, signed
by the sandbox and delivered in whatever order a test chooses.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Builder, BuilderMembership, User
from bookings.calendly import CalendlyClient
from bookings.models import Booking, EventType
from payments.models import Payment, Refund
from sandbox import delivery
from sandbox.calendly_sandbox import services as calendly_sandbox
from sandbox.calendly_sandbox.models import EventType as SandboxEventType
from sandbox.calendly_sandbox.models import Invitee
from sandbox.models import Delivery
from sandbox.stripe_sandbox import services as stripe_sandbox
from sandbox.stripe_sandbox.models import StripeObject
from tests.conftest import PASSWORD, Site
from tests.sandbox.stripe.helpers import bring_due_work_forward, pay, pay_by_debit
from webhooks import services as webhooks
from webhooks.models import WebhookEvent

CALENDLY_EVENTS = ["invitee.created", "invitee.canceled", "invitee_no_show.created"]
PRICE = 8000  # EUR 80.00


@dataclass
class Slot:
    """A client's booking as the sandbox and our database know it."""

    invitee: Invitee
    response: Any  # our answer to Calendly's redirect (None when the client left)
    redirect: str = ""  # where Calendly sent the browser back to us

    @property
    def booking(self) -> Booking:
        return Booking.objects.for_invitee(self.invitee.uuid).get()

    @property
    def payment(self) -> Payment:
        return self.booking.payments.order_by("created_at").first()


class World:
    def __init__(self, site: Site, calendly: CalendlyClient) -> None:
        self.site = site
        self.sandbox_type: SandboxEventType = calendly_sandbox.host_with_event_type_create(
            host_name="Ada Builder",
            host_email="ada@builder.example",
            host_slug="ada",
            host_timezone="Europe/Berlin",
            event_name="Portfolio review",
            event_slug="review",
            duration=60,
            redirect_url=f"{site.url}/bookings/scheduled/",
            question="What should we look at?",
        )
        me = calendly.current_user()
        remote = next(t for t in calendly.list_event_types(me.uri) if t.slug == "review")
        calendly.create_webhook_subscription(
            site.endpoint("calendly"),
            CALENDLY_EVENTS,
            organization=me.current_organization,
            scope="organization",
        )
        self.builder = Builder.objects.create(name="Ada's Studio", slug="ada")
        self.builder_user = User.objects.create_user(
            email="ada@builder.example", password=PASSWORD, name="Ada Builder"
        )
        BuilderMembership.objects.create(builder=self.builder, user=self.builder_user)
        self.event_type = EventType.objects.create(
            builder=self.builder,
            calendly_event_type_uri=remote.uri,
            scheduling_url=remote.scheduling_url,
            title="Portfolio review",
            duration_minutes=60,
            price_amount=PRICE,
            currency="eur",
        )
        self.client_user = self.person("clara@client.example", "Clara Client")

    def person(self, email: str, name: str) -> User:
        return User.objects.create_user(email=email, password=PASSWORD, name=name)

    def browser(self, user: User) -> Client:
        browser = Client()
        browser.force_login(user)
        return browser

    # --- the client's steps ---

    def book(
        self, user: User | None = None, *, hours_ahead: float = 72, come_back: bool = True
    ) -> Slot:
        """Consent on our page, pick a slot on Calendly's; with ``come_back`` the
        browser follows Calendly's redirect to us (and on to Checkout)."""
        browser = self.browser(user or self.client_user)
        consent = browser.post(
            f"/sessions/{self.event_type.pk}/",
            {"consent": "yes", "policy_version": str(self.event_type.refund_policy_version)},
        )
        assert consent.status_code == 302, consent.content[:500]
        target = urlsplit(consent["Location"])
        prefill = dict(parse_qsl(target.query))
        earliest = timezone.now() + timedelta(hours=hours_ahead)
        start = next(s for s in calendly_sandbox.open_slots(self.sandbox_type) if s >= earliest)
        picked = browser.post(
            target.path,
            {
                "start": start.isoformat(),
                "name": prefill["name"],
                "email": prefill["email"],
                "timezone": "America/New_York",
                "answer": "My portfolio",
                "utm_source": prefill["utm_source"],
                "utm_content": prefill["utm_content"],
            },
        )
        assert picked.status_code == 302, picked.content[:500]
        invitee = Invitee.objects.latest("id")
        response = None
        if come_back:
            response = self.come_back(browser, picked["Location"])
        return Slot(invitee, response, picked["Location"])

    def reschedule(self, slot: Slot) -> Invitee:
        """The client moves the booking on Calendly to the last open slot: Calendly
        cancels the old invitee as rescheduled and creates the new one (deliveries
        pending)."""
        return calendly_sandbox.invitee_book(
            event_type=self.sandbox_type,
            start=calendly_sandbox.open_slots(self.sandbox_type)[-1],
            name="Clara Client",
            email="clara@client.example",
            invitee_timezone="America/New_York",
            urls=self.site.urls,
            rescheduling=slot.invitee,
        )

    def come_back(self, browser: Client, location: str, *, follow: bool = False) -> Any:
        """Follow a provider's redirect back to us as a browser does: our landing page
        (a GET, which never writes) continues by POST with its script; done here by
        hand, posting the page's hidden fields. Returns the POST's answer (or the GET's
        when the page has nothing to continue)."""
        back = urlsplit(location)
        page = browser.get(f"{back.path}?{back.query}", follow=True)
        if page.status_code != 200 or b"data-autosubmit" not in page.content:
            return page
        back = back._replace(path=page.request["PATH_INFO"])  # where a redirect led
        fields = {
            html.unescape(name): html.unescape(value)
            for name, value in re.findall(
                r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.content.decode()
            )
            if name != "csrfmiddlewaretoken"
        }
        return browser.post(back.path, fields, follow=follow)

    def checkout_url(self, slot: Slot) -> str:
        return Payment.objects.get(booking=slot.booking, status="open").checkout_url

    def pay(self, slot: Slot, card: str = "4242 4242 4242 4242") -> Any:
        return pay(self.checkout_url(slot), card)

    def pay_by_debit(self, slot: Slot, iban: str) -> Any:
        return pay_by_debit(self.checkout_url(slot), iban)

    # --- the providers' side ---

    def pending(self, *event_types: str) -> list[Delivery]:
        rows = Delivery.objects.filter(status=Delivery.Status.PENDING).order_by("id")
        if event_types:
            rows = rows.filter(event_type__in=event_types)
        return list(rows)

    def deliver(self, *event_types: str) -> None:
        """Post the pending deliveries of these types now, in the order given (all
        pending ones without types); the rest wait."""
        for event_type in event_types or [None]:
            for item in self.pending(*([event_type] if event_type else [])):
                item.next_attempt_at = timezone.now()
                delivery.attempt(item)

    def redeliver_everything(self) -> None:
        """Every delivery made so far, again: providers retry, dashboards resend."""
        for item in Delivery.objects.filter(status=Delivery.Status.DELIVERED):
            delivery.attempt(item)

    def time_passes(self) -> None:
        """The sandbox's timed work (settlements, disputes) comes due and runs."""
        bring_due_work_forward()
        stripe_sandbox.run_due()

    def retry_waiting(self, rounds: int = 5) -> None:
        """The webhook pipeline's retries, without waiting for their backoff."""
        for _ in range(rounds):
            waiting = list(
                WebhookEvent.objects.filter(
                    status__in=[WebhookEvent.Status.WAITING, WebhookEvent.Status.FAILED]
                ).values_list("pk", flat=True)
            )
            if not waiting:
                return
            for pk in waiting:
                webhooks.event_process(pk=pk, force=True)

    def settle_everything(self) -> None:
        for _ in range(3):
            self.time_passes()
            self.deliver()
            self.retry_waiting()

    # --- what happened ---

    def state(self, slot: Slot) -> dict[str, Any]:
        booking = slot.booking
        payments = list(Payment.objects.filter(booking=booking).order_by("created_at"))
        return {
            "booking": booking.status,
            "payments": [p.status for p in payments],
            "refunds": sorted(
                (r.amount, r.status, r.external)
                for r in Refund.objects.filter(payment__booking=booking)
            ),
        }

    def stripe_metadata(self) -> list[dict[str, str]]:
        """Every metadata the Stripe sandbox holds: what our requests put there."""
        return [
            obj.data.get("metadata") or {}
            for obj in StripeObject.objects.exclude(object="event")
            if isinstance(obj.data, dict)
        ]

    def dead_or_failed(self) -> list[tuple[str, str]]:
        return list(
            WebhookEvent.objects.exclude(
                status__in=[WebhookEvent.Status.PROCESSED, WebhookEvent.Status.IGNORED]
            ).values_list("event_type", "last_error")
        )


@pytest.fixture
def world(site: Site, transactional_db: None) -> World:
    with CalendlyClient() as calendly:
        return World(site, calendly)
