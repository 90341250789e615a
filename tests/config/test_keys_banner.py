"""Every page of the admin names the environment and the mode of the Stripe key, so
that nobody refunds real money believing it a test (or the reverse)."""

from __future__ import annotations

import re
import secrets

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

BANNER = re.compile(r'<div class="env-banner env-(\w+) stripe-(\w+)"[^>]*>([^<]+)</div>')


@pytest.fixture
def admin_browser(staff) -> Client:
    browser = Client()
    browser.force_login(staff)
    return browser


def _banner(client, path: str) -> tuple[str, str, str]:
    answer = client.get(path)
    assert answer.status_code == 200, path
    found = BANNER.search(answer.content.decode())
    assert found, path
    return found.group(1), found.group(2), found.group(3)


@pytest.mark.parametrize("path", ["/admin/", "/admin/accounts/user/", "/admin/audit/auditentry/"])
def test_every_admin_page_names_the_environment_and_the_stripe_mode(admin_browser, path):
    assert _banner(admin_browser, path) == ("test", "test", "test · Stripe test mode")


@pytest.mark.parametrize(
    ("environment", "key", "shown"),
    [
        ("production", "rk_" + "live_" + secrets.token_hex(8), "production · Stripe live mode"),
        ("staging", "rk_test_" + secrets.token_hex(8), "staging · Stripe test mode"),
        ("development", "pk_test_" + secrets.token_hex(8), "development · Stripe unknown mode"),
    ],
    ids=["production", "staging", "unknown-mode"],
)
def test_production_is_named_too(admin_browser, settings, environment, key, shown):
    settings.ENVIRONMENT, settings.STRIPE_API_KEY = environment, key

    assert _banner(admin_browser, "/admin/")[2] == shown
    assert _banner(Client(), "/admin/login/")[2] == shown  # before signing in too
