"""The drift page: open findings with counts per kind and a link to each booking and
payment, for those who may view it, and nothing to change there."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from accounts.models import Builder, User
from bookings.models import Drift
from payments.models import Payment
from tests.bookings.factories import make_booking, make_event_type
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

PAGE = "/admin/bookings/drift/"


@pytest.fixture
def findings(owner: User) -> dict[str, Drift]:
    builder = Builder.objects.get()
    booking = make_booking(make_event_type(builder), owner)
    payment = Payment.objects.create(
        booking=booking, checkout_session_id="cs_test_drift", amount=8000, currency="eur"
    )
    now = timezone.now()
    common = {"window_at": now, "currency": "eur"}
    return {
        "mismatch": Drift.objects.create(
            kind=Drift.Kind.AMOUNT_MISMATCH,
            key="amount_mismatch:cs_test_drift",
            booking=booking,
            payment=payment,
            amount_expected=9000,
            amount_actual=8000,
            **common,
        ),
        "stranger": Drift.objects.create(
            kind=Drift.Kind.PAID_NO_BOOKING,
            key="paid_no_booking:cs_test_other",
            provider_ids={"checkout_session": "cs_test_other"},
            amount_actual=5000,
            **common,
        ),
        "resolved": Drift.objects.create(
            kind=Drift.Kind.PAID_NO_BOOKING,
            key="paid_no_booking:cs_test_old",
            resolved_at=now - timedelta(days=1),
            **common,
        ),
    }


def _staff(email: str, *permissions: str) -> Client:
    user = User.objects.create_user(email=email, password=PASSWORD, is_staff=True)
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    browser = Client()
    browser.force_login(user)
    return browser


def test_open_drift_is_counted_per_kind_and_linked(findings: dict[str, Drift]) -> None:
    browser = _staff("fin@slotpay.example", "view_drift")
    mismatch = findings["mismatch"]

    page = browser.get(PAGE)

    assert page.status_code == 200
    text = page.content.decode()
    assert "Open drift, by kind (2 in all)" in text
    counts = dict(_count_rows(text))
    assert counts["Amount mismatch"] == "1"
    assert counts["Paid with no booking"] == "1"
    assert counts["Confirmed with no payment"] == "0"
    assert f'href="/admin/bookings/booking/{mismatch.booking_id}/change/"' in text
    assert f'href="/admin/payments/payment/{mismatch.payment_id}/change/"' in text
    assert "€90.00 / €80.00" in text
    assert "cs_test_old" not in text  # resolved: not in the default list
    assert "cs_test_old" in browser.get(PAGE, {"state": "resolved"}).content.decode()


def _count_rows(text: str) -> list[tuple[str, str]]:
    return re.findall(
        r'<tr class="drift-count">\s*<td><a href="[^"]*">([^<]+)</a></td><td>(\d+)</td>', text
    )


def test_the_page_is_read_only(findings: dict[str, Drift]) -> None:
    browser = _staff("aud@slotpay.example", "view_drift")
    change = f"{PAGE}{findings['mismatch'].pk}/change/"

    assert browser.get(change).status_code == 200
    assert browser.post(change, {"detail": "fixed"}).status_code == 403
    assert browser.get(f"{PAGE}add/").status_code == 403
    assert browser.post(f"{PAGE}{findings['mismatch'].pk}/delete/").status_code == 403
    assert Drift.objects.filter(pk=findings["mismatch"].pk, detail="").exists()


def test_staff_without_the_permission_are_refused(findings: dict[str, Drift]) -> None:
    assert _staff("sue@slotpay.example").get(PAGE).status_code == 403
