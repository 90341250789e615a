"""An access request answered in a real browser: the demo Privacy user signs in at
/admin/, files a request for the demo client (found by email), prepares the export and
downloads it through its signed link; the file is the client's data, as JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission

from accounts.models import DataSubjectRequest
from audit.models import AuditEntry
from tests.accounts.test_dsr_admin import PRIVACY
from tests.browser.test_booking_flow import demo, page
from tests.conftest import Site

__all__ = ["demo", "page"]

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CLIENT = "client@slotpay.localhost"


def privacy_may_handle_requests() -> None:
    """What the staff groups' migration gives Privacy (added here too, so this test
    does not depend on which of the two lands first: adding is idempotent)."""
    Group.objects.get(name="Privacy").permissions.add(
        *Permission.objects.filter(codename__in=PRIVACY, content_type__app_label="accounts")
    )


def test_privacy_downloads_an_access_export(site: Site, demo: dict[str, str], page: Any):
    privacy_may_handle_requests()
    page.goto(f"{site.url}/admin/")
    page.fill("input[name=username]", "privacy@slotpay.localhost")
    page.fill("input[name=password]", demo["privacy@slotpay.localhost"])
    page.locator("input[type=submit], button[type=submit]").first.click()
    page.wait_for_url(f"{site.url}/admin/")

    page.goto(f"{site.url}/admin/accounts/datasubjectrequest/add/")
    page.fill("input[name=subject_email]", CLIENT.upper())
    page.select_option("select[name=kind]", "access")
    page.locator("input[name=_save]").click()
    request = DataSubjectRequest.objects.get()
    page.get_by_role("link", name=str(request.pk), exact=True).click()
    page.get_by_role("button", name="Prepare the export").click()
    assert "is ready to download" in page.locator(".messagelist .success").inner_text()

    with page.expect_download() as info:
        page.get_by_role("link", name="Download JSON").click()
    download = info.value

    assert re.fullmatch(rf"slotpay-data-export-{request.pk}\.json", download.suggested_filename)
    export = json.loads(Path(download.path()).read_text())
    account = export["sections"]["accounts.account"]["data"]
    assert (account["email"], account["id"]) == (CLIENT, request.subject_id)
    entry = AuditEntry.objects.get(action="accounts.dsr.export_downloaded")
    assert (entry.data["format"], entry.target_id) == ("json", str(request.subject_id))
