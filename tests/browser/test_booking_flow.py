"""A person's booking, in a real browser: Playwright drives Debian's Chromium against a
live server seeded as ``make run`` seeds it, with both sandboxes and their webhooks.

Signs in as the demo client, books a slot more than 48 hours ahead, consents, pays
with 4242, sees the booking confirmed, cancels and sees the full refund; then books
again, pays with 0002, and sees the decline and no confirmed booking.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from bookings.models import Booking
from payments.models import Payment, Refund
from sandbox import delivery
from tests.conftest import Site

# Playwright's assertions wait for the page (a click's navigation lands a moment later).
expect = pytest.importorskip("playwright.sync_api").expect

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")

# PostgreSQL: the live server, the delivery thread and the browser act concurrently, and
# Django shares one SQLite connection between the live server's threads.
pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo(site: Site, settings: Any) -> Iterator[dict[str, str]]:
    """``make run``'s data and delivery thread, on the live server."""
    settings.ENVIRONMENT = "development"
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    settings.ENVIRONMENT = "test"
    settings.SANDBOX_DELIVERY_THREAD = True  # the providers' webhooks, as on make run
    yield dict(re.findall(r"^\s+(\S+@slotpay\.localhost)\s+(\S+)$", out.getvalue(), re.M))
    delivery.stop_dispatcher()


@pytest.fixture
def page() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread; the test's own ORM
    # calls are still synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
        tab = context.new_page()
        tab.set_default_timeout(15_000)
        yield tab
        context.close()
        browser.close()
        # The test's ORM calls ran in Playwright's context, on a connection of their
        # own: close it here, or it holds the test database open.
        connections.close_all()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def choose_slot_and_consent(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/builders/")
    page.get_by_role("link", name="Demo Studio").click()
    page.get_by_role("link", name="Consultation, 60 minutes").click()
    expect(page.locator("body")).to_contain_text("€80.00")
    expect(page.locator("body")).to_contain_text("48 hours or more before the start: 100% refunded")
    page.get_by_role("button", name="Choose a time").click()
    # Not ticked: refused with a clear message (the browser's own check first).
    assert page.url.startswith(f"{site.url}/sessions/")
    page.get_by_label("I have read and agree to the refund policy above.").check()
    page.get_by_role("button", name="Choose a time").click()
    page.wait_for_url(re.compile(r".*/sandbox/calendly/demo-studio/consultation/.*"))
    earliest = timezone.now() + timedelta(hours=72)
    slots = page.locator("input[name=start]")
    for index in range(slots.count()):
        if datetime.fromisoformat(slots.nth(index).get_attribute("value")) >= earliest:
            slots.nth(index).check()
            break
    else:
        pytest.fail("no slot 72 h ahead on the sandbox page")
    page.get_by_role("button", name="Schedule event").click()
    page.wait_for_url(re.compile(r".*/sandbox/stripe/checkout/.*"))


def pay(page: Any, card: str) -> None:
    page.fill("input[name=number]", card)
    page.fill("input[name=expiry]", "12 / 34")
    page.fill("input[name=cvc]", "123")
    page.fill("input[name=name]", "Demo Client")
    page.get_by_role("button", name=re.compile(r"^Pay ")).first.click()


def test_book_pay_cancel_and_a_declined_card(site: Site, demo, page) -> None:
    page.goto(f"{site.url}/accounts/login/")
    page.fill("input[name=username]", "client@slotpay.localhost")
    page.fill("input[name=password]", demo["client@slotpay.localhost"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{site.url}/bookings/")

    choose_slot_and_consent(page, site)
    pay(page, "4242 4242 4242 4242")
    page.wait_for_url(re.compile(r".*/bookings/[0-9a-f-]+/paid/.*"))
    expect(page.get_by_role("heading", name="Booking confirmed")).to_be_visible()
    expect(page.locator("[data-status]")).to_have_attribute("data-status", "confirmed")
    expect(page.locator("body")).to_contain_text("Visa •••• 4242")

    page.get_by_role("link", name="Booking details").click()
    assert page.locator(".refund-amount").inner_text() == "€80.00"
    page.get_by_role("button", name="Cancel booking and refund €80.00").click()
    expect(page.get_by_text("Canceled. €80.00 is being refunded to your card.")).to_be_visible()
    expect(page.locator("[data-status]")).to_have_attribute("data-status", "canceled")
    assert page.locator(".refunded").inner_text() == "€80.00"

    first = Booking.objects.get()
    assert (first.status, first.client.email) == ("canceled", "client@slotpay.localhost")
    assert Payment.objects.get(booking=first).status == "refunded"
    assert Refund.objects.get().amount == 8000

    # Second run: a declined card.
    choose_slot_and_consent(page, site)
    pay(page, "4000 0000 0000 0002")
    expect(page.get_by_role("alert")).to_be_visible()
    assert "declined" in page.get_by_role("alert").inner_text().lower()
    page.goto(f"{site.url}/bookings/")
    second = Booking.objects.exclude(pk=first.pk).get()
    assert second.status == "pending_payment"
    assert not Payment.objects.filter(booking=second, status="paid").exists()
    expect(page.locator("body")).to_contain_text("Awaiting payment")
    assert not Booking.objects.filter(status="confirmed").exists()
