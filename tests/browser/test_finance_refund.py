"""A refund from the back-office, in a real browser: the demo Finance user signs in at
/admin/, opens a paid booking, asks to refund it, confirms their password (step-up),
submits an amount, and sees Stripe's (sandbox's) answer: succeeded.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission

from payments.models import Payment, Refund
from tests.browser.test_booking_flow import demo, page
from tests.conftest import Site
from tests.payments.test_backoffice_refunds import FINANCE, paid_booking, refunded_at_stripe

__all__ = ["demo", "page"]

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def finance_may_refund() -> None:
    """What the staff groups' migration (accounts 0006) gives Finance: a transactional
    test's flush empties the tables the migration filled, so seed_demo's group is
    bare here."""
    group = Group.objects.get(name="Finance")
    group.permissions.add(
        *Permission.objects.filter(
            codename__in=FINANCE, content_type__app_label__in=("bookings", "payments")
        )
    )


def test_finance_refunds_a_booking_with_step_up(site: Site, demo: dict[str, str], page: Any):
    finance_may_refund()
    booking = paid_booking()
    password = demo["finance@slotpay.localhost"]

    page.goto(f"{site.url}/admin/")
    page.fill("input[name=username]", "finance@slotpay.localhost")
    page.fill("input[name=password]", password)
    page.locator("input[type=submit], button[type=submit]").first.click()
    page.wait_for_url(f"{site.url}/admin/")

    page.goto(f"{site.url}/admin/bookings/booking/{booking.pk}/change/")
    page.get_by_role("link", name="Refund", exact=True).click()

    # Asked to confirm it is them before money moves.
    page.wait_for_url(re.compile(r".*/accounts/step-up/\?next=.*"))
    page.get_by_label("Your password").fill(password)
    page.get_by_role("button", name="Confirm").click()

    page.wait_for_url(re.compile(rf".*/admin/bookings/booking/{booking.pk}/refund/.*"))
    assert page.locator('[data-amount="remaining"]').inner_text() == "€80.00"
    page.get_by_label("Amount (EUR)").fill("25.00")
    page.get_by_label("Reason").fill("The session started late")
    page.get_by_role("button", name="Refund").click()

    success = page.locator(".messagelist .success")
    assert success.inner_text() == "Refunded €25.00: Stripe reports the refund succeeded."
    assert page.locator('[data-amount="remaining"]').inner_text() == "€55.00"
    refund = Refund.objects.get()
    assert (refund.amount, refund.status, refund.requested_by.email) == (
        2500,
        "succeeded",
        "finance@slotpay.localhost",
    )
    assert Payment.objects.get(booking=booking).status == "partially_refunded"
    assert refunded_at_stripe(booking) == 2500
