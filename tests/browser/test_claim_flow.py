"""A booking made straight on the builder's Calendly page, in a real browser: Playwright
drives Debian's Chromium against the live server seeded as ``make run`` seeds it, with
both sandboxes and their webhooks (the setup of test_booking_flow.py).

Someone who never came through Slotpay books on the sandbox Calendly page, follows the
claim link emailed to the address they gave, signs in with that address (an account
not verified yet), agrees to the policy and pays: the booking is confirmed and theirs.
A second booking made the same way and left unclaimed is released on Calendly when
the payment hold ends, saying why, and its link stops working.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.utils import timezone

from accounts.models import User
from bookings import tasks
from bookings.models import Booking
from payments.models import Payment
from sandbox.calendly_sandbox.models import Invitee
from tests.browser.test_booking_flow import demo, expect, page, pay
from tests.conftest import PASSWORD, Site

__all__ = ["demo", "page"]

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WALK_IN = "walk.in@example.org"


def book_on_calendly(page: Any, site: Site, *, email: str, hours_ahead: int) -> None:
    """Straight to the builder's Calendly page: no consent, no prefill, no intent."""
    page.goto(f"{site.url}/sandbox/calendly/demo-studio/consultation/")
    earliest = timezone.now() + timedelta(hours=hours_ahead)
    slots = page.locator("input[name=start]")
    for index in range(slots.count()):
        if datetime.fromisoformat(slots.nth(index).get_attribute("value")) >= earliest:
            slots.nth(index).check()
            break
    else:
        pytest.fail(f"no slot {hours_ahead} h ahead on the sandbox page")
    page.fill("input[name=name]", "Walk In")
    page.fill("input[name=email]", email)
    page.get_by_role("button", name="Schedule event").click()
    # Calendly sends the browser back to us; nobody is signed in here yet.
    page.wait_for_url(re.compile(r".*/accounts/login/.*"))


def emailed_claim_link(to: str) -> str:
    """The link in the claim email, once the webhook has been processed (the sandbox's
    delivery thread posts it to the live server)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for email in mail.outbox:
            if to in email.to and email.subject.startswith("Claim and pay"):
                [url] = re.findall(r"^(http\S+/bookings/claim/\?t=\S+)$", email.body, re.M)
                return url
        time.sleep(0.2)
    pytest.fail(f"no claim email to {to}")


def test_book_on_calendly_claim_by_email_and_pay(site: Site, demo, page) -> None:
    walk_in = User.objects.create_user(
        email=WALK_IN, password=PASSWORD, name="Walk In", email_verified_at=None
    )
    book_on_calendly(page, site, email=WALK_IN, hours_ahead=72)
    url = emailed_claim_link(WALK_IN)

    page.goto(url)
    page.wait_for_url(f"{site.url}/bookings/claim/")  # the secret left the address bar
    expect(page.get_by_role("heading", name="Claim your booking")).to_be_visible()
    hold = page.locator("#hold").inner_text()
    assert re.search(r"\d+ minutes? from now", hold)
    assert re.search(r"\(\w+/\w+\)", hold) or "(UTC)" in hold  # the zone, named
    expect(page.locator("body")).to_contain_text("€80.00")

    page.get_by_role("link", name="Sign in to claim it").click()
    page.fill("input[name=username]", WALK_IN)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{site.url}/bookings/claim/")
    page.get_by_label("I have read and agree to the refund policy above.").check()
    page.get_by_role("button", name="Agree and pay").click()
    page.wait_for_url(re.compile(r".*/sandbox/stripe/checkout/.*"))
    pay(page, "4242 4242 4242 4242")
    page.wait_for_url(re.compile(r".*/bookings/[0-9a-f-]+/paid/.*"))
    expect(page.get_by_role("heading", name="Booking confirmed")).to_be_visible()
    expect(page.locator("[data-status]")).to_have_attribute("data-status", "confirmed")

    booking = Booking.objects.get()
    walk_in.refresh_from_db()
    assert (booking.client, booking.status) == (walk_in, "confirmed")
    assert walk_in.email_verified_at is not None
    assert Payment.objects.get(booking=booking).status == "paid"

    # The link was spent: opened again, it says so.
    page.goto(url)
    expect(page.get_by_role("heading", name="This link cannot be used")).to_be_visible()


def test_an_unclaimed_booking_is_released_after_the_hold(site: Site, demo, page) -> None:
    book_on_calendly(page, site, email="someone@example.org", hours_ahead=96)
    url = emailed_claim_link("someone@example.org")
    booking = Booking.objects.get()
    assert (booking.client, booking.status) == (None, "pending_payment")

    hold = timedelta(minutes=settings.BOOKING_PAYMENT_HOLD_MINUTES + 1)
    Booking.objects.filter(pk=booking.pk).update(created_at=booking.created_at - hold)
    assert tasks.expire_unpaid() == 1

    assert Booking.objects.get(pk=booking.pk).status == "expired"
    event = Invitee.objects.get().scheduled_event
    event.refresh_from_db()
    assert event.status == "canceled"
    assert event.cancel_reason == (
        f"Not paid within {settings.BOOKING_PAYMENT_HOLD_MINUTES} minutes of booking"
    )
    page.goto(url)
    expect(page.get_by_role("heading", name="This link cannot be used")).to_be_visible()
