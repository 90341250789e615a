"""Staff see event types, bookings and payments; a policy edit is versioned and audited."""

import pytest
from django.test import Client

from audit.models import AuditEntry
from bookings.models import EventType
from payments.models import Payment
from tests.bookings.factories import make_booking, make_event_type

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(staff):
    browser = Client()
    browser.force_login(staff)
    return browser


def test_a_policy_edit_in_the_admin_raises_the_version_and_is_audited(admin_client, owner):
    event_type = make_event_type(owner.builders.get())
    form = {
        "builder": event_type.builder_id,
        "title": event_type.title,
        "calendly_event_type_uri": event_type.calendly_event_type_uri,
        "scheduling_url": event_type.scheduling_url,
        "duration_minutes": 60,
        "price_amount": 8000,
        "currency": "eur",
        "refund_policy": '[{"min_notice_hours": 24, "percent": 100}, '
        '{"min_notice_hours": 0, "percent": 0}]',
        "active": "on",
    }
    response = admin_client.post(f"/admin/bookings/eventtype/{event_type.pk}/change/", form)

    assert response.status_code == 302, response.content[:2000]
    event_type.refresh_from_db()
    assert event_type.refund_policy_version == 2
    assert event_type.refund_policy[0] == {"min_notice_hours": 24, "percent": 100}
    assert AuditEntry.objects.filter(action="bookings.event_type.policy_changed").count() == 1

    form["refund_policy"] = '[{"min_notice_hours": 0, "percent": 150}]'
    refused = admin_client.post(f"/admin/bookings/eventtype/{event_type.pk}/change/", form)
    assert refused.status_code == 200
    assert b"percent 0 to 100" in refused.content
    assert EventType.objects.get(pk=event_type.pk).refund_policy_version == 2


def test_staff_see_the_radar_risk_of_a_payment(admin_client, owner):
    booking = make_booking(make_event_type(owner.builders.get()), None)
    Payment.objects.create(
        booking=booking,
        checkout_session_id="cs_test_risky",
        amount=8000,
        currency="eur",
        status="paid",
        risk_level="elevated",
        needs_review=True,
        review_reason="Radar risk level elevated",
    )
    page = admin_client.get("/admin/payments/payment/")
    assert page.status_code == 200
    assert b"elevated" in page.content
    assert b"\xe2\x82\xac80.00" in page.content


def test_the_bookings_list_filters_by_when_they_start_in_the_viewers_zone(
    admin_client, staff, owner
):
    """Ranges on ``start_at`` (indexed) instead of a month scan of the whole table;
    "Today" is the viewer's day."""
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from django.utils import timezone

    event_type = make_event_type(owner.builders.get())
    now = timezone.now()
    tokyo_midnight = timezone.localtime(now, ZoneInfo("Asia/Tokyo")).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    starts = {
        "last week": now - timedelta(days=6),
        "last month": now - timedelta(days=30),
        "in three days": now + timedelta(days=3),
        "in ten days": now + timedelta(days=10),
        "Tokyo's yesterday": tokyo_midnight - timedelta(minutes=30),
        "Tokyo's today": tokyo_midnight + timedelta(minutes=30),
        "Tokyo's tomorrow": tokyo_midnight + timedelta(days=1, minutes=30),
    }
    references = {
        str(make_booking(event_type, None, number, start_at=start).reference): label
        for number, (label, start) in enumerate(starts.items())
    }

    def listed(choice: str) -> set[str]:
        response = admin_client.get(f"/admin/bookings/booking/?starts={choice}")
        assert response.status_code == 200
        shown = [str(booking.reference) for booking in response.context["cl"].result_list]
        return {references[reference] for reference in shown}

    upcoming = {label for label, start in starts.items() if start >= now}
    assert listed("upcoming") == upcoming
    assert listed("past") == set(starts) - upcoming
    assert listed("next_7_days") == upcoming - {"in ten days"}
    assert listed("past_7_days") == {
        label for label, start in starts.items() if now - timedelta(days=7) <= start < now
    }
    # Soonest first where one looks ahead; an unknown value is refused as the admin's own.
    response = admin_client.get("/admin/bookings/booking/?starts=upcoming")
    starts_shown = [booking.start_at for booking in response.context["cl"].result_list]
    assert starts_shown == sorted(starts_shown)
    refused = admin_client.get("/admin/bookings/booking/?starts=%00garbage")
    assert (refused.status_code, refused["Location"]) == (302, "/admin/bookings/booking/?e=1")

    staff.time_zone = "Asia/Tokyo"
    staff.save(update_fields=["time_zone"])
    assert listed("today") == {"Tokyo's today"}
