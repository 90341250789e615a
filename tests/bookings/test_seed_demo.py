"""``make run``'s demo: builders in EUR and JPY, a client, a staff user per group."""

import io
import re

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import RequestFactory

from bookings.models import EventType

pytestmark = pytest.mark.django_db


def seed() -> dict[str, str]:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return dict(re.findall(r"^\s+(\S+@slotpay\.localhost)\s+(\S+)$", out.getvalue(), re.M))


def test_seed_demo_creates_what_the_flow_needs_and_prints_how_to_sign_in(settings, client):
    settings.ENVIRONMENT = "development"

    first = seed()
    second = seed()

    offered = {(t.builder.slug, t.currency, t.price_amount) for t in EventType.objects.all()}
    assert offered == {("demo-studio", "eur", 8000), ("tokyo-works", "jpy", 5000)}
    for event_type in EventType.objects.all():
        page = client.get(event_type.scheduling_url.removeprefix(settings.SITE_URL))
        assert page.status_code == 200  # the sandbox's scheduling page answers
    assert (
        set(first)
        == set(second)
        == {
            "client@slotpay.localhost",
            "support@slotpay.localhost",
            "finance@slotpay.localhost",
            "privacy@slotpay.localhost",
            "auditor@slotpay.localhost",
            "demo-studio@slotpay.localhost",
            "tokyo-works@slotpay.localhost",
        }
    )
    # Every printed password signs in (the latest run's), staff are in their group.
    for email, password in second.items():
        user = authenticate(RequestFactory().post("/"), username=email, password=password)
        assert user is not None, email
        if email.split("@")[0] in ("support", "finance", "privacy", "auditor"):
            assert user.is_staff
            assert user.groups.filter(name__iexact=email.split("@")[0]).exists()
    assert EventType.objects.count() == 2
    listing = client.get("/builders/tokyo-works/")
    assert "¥5,000" in listing.content.decode()


def test_seed_demo_refuses_other_profiles():
    with pytest.raises(CommandError, match="development"):
        call_command("seed_demo", stdout=io.StringIO())
