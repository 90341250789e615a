"""A new client, in a real browser: signs up, is refused a booking until the email is
verified (and told why), follows the link from the email (printed by the console mail
backend, as in development), books a slot and pays.

Playwright drives Debian's Chromium against a live server seeded as ``make run`` seeds
it, with both sandboxes and their webhooks (see test_booking_flow.py).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from accounts.models import SignIn, User
from bookings.models import Booking
from payments.models import Payment
from tests.browser.test_booking_flow import (  # noqa: F401 (fixtures)
    choose_slot_and_consent,
    demo,
    expect,
    page,
    pay,
)
from tests.conftest import Site

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PASSWORD = "a long and unusual passphrase 7"  # pragma: allowlist secret
VERIFY_LINK = re.compile(r"(https?://\S+/accounts/verify/[A-Za-z0-9_-]+/)")


def test_sign_up_verify_book_and_pay(
    site: Site,
    demo,  # noqa: F811
    page: Any,  # noqa: F811
    settings: Any,
    capfd: Any,
) -> None:
    # Email as development prints it (the console backend): the link is read from there.
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    page.goto(f"{site.url}/accounts/login/")
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Email", exact=True).fill("Nina.New@example.org")
    page.get_by_label("Name", exact=True).fill("Nina New")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again", exact=True).fill(PASSWORD)
    page.get_by_label("Time zone").select_option("Europe/Berlin")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(f"{site.url}/accounts/signup/done/")
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    user = User.objects.get_by_email("nina.new@example.org")
    assert user.email_verified_at is None
    assert SignIn.objects.filter(user=user).count() == 1

    # Signed in but unverified: the session page says why there is no booking yet.
    page.goto(f"{site.url}/builders/")
    page.get_by_role("link", name="Demo Studio").click()
    page.get_by_role("link", name="Consultation, 60 minutes").click()
    expect(page.locator("#verify-first")).to_be_visible()
    expect(page.get_by_role("button", name="Choose a time")).to_have_count(0)

    # The link from the email the console printed: a page with a button, which verifies.
    printed = capfd.readouterr().out
    assert "To: Nina.New@example.org" in printed
    link = VERIFY_LINK.search(printed)[1]
    assert link.startswith(site.url)
    page.goto(link)
    page.get_by_role("button", name="Verify my email address").click()
    expect(page.get_by_role("heading", name="Email address verified")).to_be_visible()
    user.refresh_from_db()
    assert user.email_verified_at is not None

    # Now the booking goes through: Calendly's page, Stripe's, confirmed.
    choose_slot_and_consent(page, site)
    pay(page, "4242 4242 4242 4242")
    page.wait_for_url(re.compile(r".*/bookings/[0-9a-f-]+/paid/.*"))
    expect(page.get_by_role("heading", name="Booking confirmed")).to_be_visible()
    booking = Booking.objects.get(client=user)
    assert booking.status == "confirmed"
    assert Payment.objects.get(booking=booking).status == "paid"

    # The account page shows the sign-in, in the zone chosen at sign-up.
    page.goto(f"{site.url}/accounts/")
    assert "Europe/Berlin" in page.locator("#sign-ins").inner_text()
