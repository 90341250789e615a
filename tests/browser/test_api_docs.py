"""The API's documentation pages in Chromium, under the site's CSP: Swagger UI and ReDoc
render the schema from our own static files, with no CSP violation, no script error and
no request to another origin; Swagger UI's "Try it out" works with a token."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections

from accounts import tokens
from accounts.models import User
from tests.conftest import PASSWORD

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

# Runs before the page's own scripts (Playwright injects it outside the page's CSP):
# every violation the policy reports is kept for the test to read.
COLLECT_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


class Tab:
    """A Chromium tab and everything it reported."""

    def __init__(self, page: Any, origin: str) -> None:
        self.page = page
        self.origin = origin
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on(
            "console",
            lambda message: message.type == "error" and self.errors.append(message.text),
        )
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("request", lambda request: self.requests.append(request.url))

    def violations(self) -> list[str]:
        return list(self.page.evaluate("window.__violations"))

    def foreign_requests(self) -> list[str]:
        return [
            url
            for url in self.requests
            if not url.startswith((self.origin + "/", "data:", "blob:"))
        ]

    def assert_clean(self) -> None:
        assert self.violations() == []
        assert self.errors == []
        assert self.foreign_requests() == []


@pytest.fixture
def tab(live_server: Any) -> Iterator[Tab]:
    sync_api = pytest.importorskip("playwright.sync_api")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = browser.new_context()
        context.add_init_script(COLLECT_VIOLATIONS)
        page = context.new_page()
        page.set_default_timeout(20_000)
        yield Tab(page, live_server.url)
        context.close()
        browser.close()
        connections.close_all()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def test_swagger_ui_renders_under_the_csp_and_tries_a_call_with_a_token(
    tab: Tab, live_server: Any
) -> None:
    user = User.objects.create_user(email="dev@client.example", password=PASSWORD, name="Dev")
    secret = tokens.api_token_create(user=user, name="docs", scopes=["bookings:read"]).secret
    page = tab.page

    page.goto(f"{live_server.url}/api/docs/")
    page.locator(".swagger-ui .info .title").wait_for()
    assert "Slotpay API" in page.locator(".swagger-ui .info .title").inner_text()
    assert page.locator(".opblock").count() >= 5
    # The session cookie and the token are both offered.
    page.get_by_role("button", name="Authorize").click()
    dialog = page.locator(".dialog-ux")
    assert "apiToken" in dialog.inner_text()
    assert "cookieAuth" in dialog.inner_text()
    dialog.locator("input[type=text]").first.fill(secret)
    dialog.get_by_role("button", name="Apply credentials").first.click()
    dialog.get_by_role("button", name="Close").first.click()

    listing = page.locator("#operations-bookings-bookings_list")
    listing.locator(".opblock-summary").click()
    listing.get_by_role("button", name="Try it out").click()
    listing.get_by_role("button", name="Execute").click()
    status = listing.locator(".live-responses-table .response .response-col_status")
    status.first.wait_for()
    assert status.first.inner_text().strip() == "200"

    tab.assert_clean()


def test_redoc_renders_under_the_csp_and_searches(tab: Tab, live_server: Any) -> None:
    page = tab.page

    answer = page.goto(f"{live_server.url}/api/redoc/")
    page.get_by_role("heading", name="Slotpay API").first.wait_for()
    assert page.locator("[data-section-id]").count() >= 4
    # ReDoc's styles applied: its menu is laid out beside the content, not above it.
    menu = page.locator(".menu-content").first.bounding_box()
    assert menu is not None
    assert (menu["x"], menu["height"] > 300) == (0, True)
    # Search runs in ReDoc's worker (a blob: URL the page's policy allows).
    page.get_by_placeholder("Search...").fill("cancel")
    results = page.locator("[data-role='search:results'] [role=menuitem]")
    results.first.wait_for()
    assert "cancel" in results.first.inner_text()

    policy = answer.headers["content-security-policy"]
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert "'nonce-" in policy
    tab.assert_clean()
