"""The audit trail names the person who cancelled, whichever event arrives first.

When a client cancels, we tell Calendly, and Calendly sends ``invitee.canceled``. A
fast webhook can be processed before the client's own request goes on to refund. A
proxy between our Calendly client and the sandbox makes that order certain: it
forwards the cancel to the sandbox and, before handing Calendly's answer back,
delivers Calendly's webhook to our endpoint (processed at once: tasks run eagerly in
the test profile).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from django.db import connection

from audit.models import AuditEntry
from bookings.calendly import CalendlyClient
from payments.models import Refund
from tests.bookings.world import PRICE, World, world
from tests.conftest import LocalServer, QuietHandler

__all__ = ["world"]

pytestmark = pytest.mark.django_db(transaction=True)


class CalendlyProxy(LocalServer):
    """Forwards every request to ``upstream``; after a cancellation, runs ``then``."""

    def __init__(self, upstream: str) -> None:
        self.then: Callable[[], None] | None = None
        proxy = self

        class Handler(QuietHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")
                }
                answer = requests.request(
                    self.command, upstream + self.path, data=body, headers=headers, timeout=30
                )
                if self.path.endswith("/cancellation") and proxy.then is not None:
                    try:
                        proxy.then()
                    finally:
                        connection.close()  # this thread's, not the test's
                self.send_response(answer.status_code)
                for name in ("Content-Type", "X-Request-Id"):
                    if name in answer.headers:
                        self.send_header(name, answer.headers[name])
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_DELETE = _forward  # noqa: N815 (http.server's names)

        super().__init__(Handler)


@pytest.fixture
def proxy(world: World, settings: Any) -> Iterator[CalendlyProxy]:
    proxy = CalendlyProxy(settings.CALENDLY_API_BASE)
    settings.CALENDLY_API_BASE = proxy.url
    yield proxy
    proxy.close()


def _paid(world: World) -> Any:
    slot = world.book()
    world.pay(slot)
    world.deliver()
    world.retry_waiting()
    return slot


def test_the_clients_cancel_is_theirs_when_calendlys_webhook_comes_first(world, proxy):
    slot = _paid(world)
    booking = slot.booking
    proxy.then = lambda: world.deliver("invitee.canceled")

    response = world.browser(world.client_user).post(f"/bookings/{booking.reference}/cancel/")

    assert response.status_code == 302
    canceled = AuditEntry.objects.get(action="bookings.booking.canceled", target_id=str(booking.pk))
    assert (canceled.actor_type, canceled.actor_id) == ("user", str(world.client_user.pk))
    assert canceled.data["reason"] == "canceled by the client"
    refund = Refund.objects.get()
    assert (refund.amount, refund.requested_by) == (PRICE, world.client_user)
    requested = AuditEntry.objects.get(action="payments.refund.requested")
    assert requested.actor_id == str(world.client_user.pk)
    world.settle_everything()
    assert world.state(slot)["refunds"] == [(PRICE, "succeeded", False)]
    assert world.dead_or_failed() == []


def test_a_cancellation_made_on_calendly_is_calendlys(world):
    """Without a request from the client (the builder cancelled on Calendly), the
    trail says so: a system actor, the time Calendly gives. The builder called it off,
    so the client gets everything back, even under a policy that refunds nothing."""
    no_refund = [{"min_notice_hours": 0, "percent": 0}]
    assert world.event_type.set_refund_policy(no_refund, actor=world.builder_user)
    slot = _paid(world)
    with CalendlyClient() as calendly:  # the host's token: Calendly says canceler "host"
        calendly.cancel_event(slot.booking.calendly_event_uri, reason="Builder is ill")

    world.deliver("invitee.canceled")
    world.retry_waiting()

    canceled = AuditEntry.objects.get(action="bookings.booking.canceled")
    assert (canceled.actor_type, canceled.actor_id) == ("system", "bookings")
    assert canceled.data["reason"] == "canceled by the builder on Calendly (full refund)"
    refund = Refund.objects.get()
    assert (refund.amount, refund.requested_by) == (PRICE, None)
