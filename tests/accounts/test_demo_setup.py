"""``make run``'s demo data: a superuser once, and a sandbox scheduling page to try."""

import io

import pytest
from django.core.management import call_command

from accounts.models import User

pytestmark = pytest.mark.django_db


def test_demo_setup_creates_the_superuser_once_and_a_scheduling_page(settings, client):
    settings.ENVIRONMENT = "development"
    first, second = io.StringIO(), io.StringIO()

    call_command("demo_setup", stdout=first)
    call_command("demo_setup", stdout=second)

    assert "password:" in first.getvalue()
    assert "password:" not in second.getvalue()
    assert User.objects.filter(is_superuser=True).count() == 1
    page = client.get("/sandbox/calendly/demo-studio/consultation/")
    assert page.status_code == 200
    assert b"Consultation, 60 minutes" in page.content


def test_demo_setup_refuses_other_profiles():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="development"):
        call_command("demo_setup", stdout=io.StringIO())
