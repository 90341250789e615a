"""Data-subject requests in the back-office: the queue, the export's signed links,
rectification, the stepped-up erasure, "Delete" on a person; Support reaches none."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from accounts.models import DataSubjectRequest, User
from audit.models import AuditEntry
from tests.accounts.test_dsr_export import paid_and_past, paid_booking
from tests.bookings.world import PRICE, World, world
from tests.conftest import PASSWORD, step_up

__all__ = ["world"]

pytestmark = pytest.mark.django_db(transaction=True)

PRIVACY = (
    "view_datasubjectrequest",
    "add_datasubjectrequest",
    "change_datasubjectrequest",
    "carry_out_erasure",
    "view_user",
    "view_personal_data",
)
LIST = "/admin/accounts/datasubjectrequest/"


def staff(email: str, *codenames: str) -> User:
    user = User.objects.create_user(email=email, password=PASSWORD, name="Staff", is_staff=True)
    found = Permission.objects.filter(codename__in=codenames, content_type__app_label="accounts")
    assert sorted(p.codename for p in found) == sorted(codenames)
    user.user_permissions.add(*found)
    return user


def signed_in(user: User) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


@pytest.fixture
def privacy(world: World) -> Client:
    return signed_in(staff("pia@slotpay.example", *PRIVACY))


def file(browser: Client, email: str, kind: str) -> DataSubjectRequest:
    answer = browser.post(f"{LIST}add/", {"subject_email": email, "kind": kind, "notes": ""})
    assert answer.status_code == 302, answer.content[:2000]
    return DataSubjectRequest.objects.latest("id")


def download_links(browser: Client, request: DataSubjectRequest) -> dict[str, str]:
    page = browser.get(f"{LIST}{request.pk}/change/").content.decode()
    return {fmt: url for url, fmt in re.findall(r'<a href="([^"]+)" data-export="(\w+)"', page)}


def listed(page: str) -> list[str]:
    """The requests a list page shows, in order."""
    return re.findall(
        r'<th class="field-id"><a href="/admin/accounts/datasubjectrequest/(\d+)/', page
    )


def test_the_queue_lists_open_requests_by_due_date_overdue_marked(world: World, privacy: Client):
    late = file(privacy, "clara@client.example", "access")
    DataSubjectRequest.objects.filter(pk=late.pk).update(
        received_at=timezone.now() - timedelta(days=40),
        due_at=timezone.now() - timedelta(days=10),
    )
    other = world.person("otto@other.example", "Otto Other")
    soon = file(privacy, other.email, "erasure")
    closed = file(privacy, other.email, "access")
    DataSubjectRequest.objects.filter(pk=closed.pk).update(status="completed")

    page = privacy.get(LIST).content.decode()

    assert listed(page) == [str(late.pk), str(soon.pk)]
    assert "OVERDUE by 10 day(s)" in page
    assert "in 29 day(s)" in page or "in 30 day(s)" in page
    # Found by the subject's exact email, through the blind index.
    found = privacy.get(LIST, {"q": "OTTO@other.example", "state": "all"}).content.decode()
    assert sorted(listed(found)) == sorted([str(soon.pk), str(closed.pk)])
    assert AuditEntry.objects.filter(action="accounts.dsr.filed").count() == 3


def test_an_unknown_email_files_nothing(world: World, privacy: Client) -> None:
    answer = privacy.post(f"{LIST}add/", {"subject_email": "nobody@x.example", "kind": "access"})

    assert answer.status_code == 200
    assert b"No account has this email address." in answer.content
    assert not DataSubjectRequest.objects.exists()


def test_the_export_downloads_through_a_signed_link_each_download_audited(
    world: World, privacy: Client, settings: Any
) -> None:
    paid_booking(world)
    request = file(privacy, "clara@client.example", "access")
    assert privacy.post(f"{LIST}{request.pk}/export/").status_code == 302
    links = download_links(privacy, request)
    assert set(links) == {"json", "html"}

    answer = privacy.get(links["json"])

    assert answer.status_code == 200
    assert answer["Content-Disposition"] == (
        f'attachment; filename="slotpay-data-export-{request.pk}.json"'
    )
    export = json.loads(answer.content)
    assert export["sections"]["accounts.account"]["data"]["email"] == "clara@client.example"
    assert privacy.get(links["html"]).status_code == 200
    downloads = AuditEntry.objects.filter(action="accounts.dsr.export_downloaded")
    assert [(e.data["format"], e.target_id) for e in downloads.order_by("sequence")] == [
        ("json", str(world.client_user.pk)),
        ("html", str(world.client_user.pk)),
    ]
    entry = downloads.first()
    assert entry.actor_id == str(User.objects.get_by_email("pia@slotpay.example").pk)
    assert "accounts.account" in entry.data["fields"]
    assert "access request" in entry.data["reason"]

    # Altered, someone else's, superseded or expired: refused, and nothing recorded.
    token = links["json"].rstrip("/").rsplit("/", 1)[1]
    assert privacy.get(links["json"].replace(token, token[:-2] + "xx")).status_code == 403
    colleague = signed_in(staff("pat@slotpay.example", *PRIVACY))
    assert colleague.get(links["json"]).status_code == 403
    settings.DSR_EXPORT_LINK_MAX_AGE_SECONDS = -1
    expired = privacy.get(links["json"])
    assert (expired.status_code, b"expired" in expired.content) == (403, True)
    settings.DSR_EXPORT_LINK_MAX_AGE_SECONDS = 3600
    privacy.post(f"{LIST}{request.pk}/export/")
    assert privacy.get(links["json"]).status_code == 403  # an older version's link
    assert downloads.count() == 2


def test_support_reaches_none_of_it(world: World, privacy: Client) -> None:
    request = file(privacy, "clara@client.example", "access")
    privacy.post(f"{LIST}{request.pk}/export/")
    link = download_links(privacy, request)["json"]
    support = signed_in(staff("sue@slotpay.example", "view_user", "reveal_personal_data"))
    erasure = file(privacy, "clara@client.example", "erasure")
    step_up(support)

    for page in (
        LIST,
        f"{LIST}add/",
        f"{LIST}{request.pk}/change/",
        link,
    ):
        assert support.get(page).status_code == 403, page
    for page in (
        f"{LIST}{request.pk}/export/",
        f"{LIST}{erasure.pk}/erase/",
        f"{LIST}{request.pk}/close/",
        f"{LIST}{request.pk}/rectify/",
        f"/admin/accounts/user/{world.client_user.pk}/delete/",
    ):
        assert support.post(page, {"status": "rejected"}).status_code == 403, page
    erasure.refresh_from_db()
    assert (erasure.status, erasure.steps.count()) == ("open", 0)
    assert User.objects.get(pk=world.client_user.pk).name == "Clara Client"


def test_the_erasure_needs_a_step_up_then_runs(world: World, privacy: Client) -> None:
    paid_and_past(world)
    request = file(privacy, "clara@client.example", "erasure")

    first = privacy.post(f"{LIST}{request.pk}/erase/")

    assert first.status_code == 302
    assert first["Location"].startswith("/accounts/step-up/")
    assert not request.steps.exists()
    step_up(privacy)
    answer = privacy.post(f"{LIST}{request.pk}/erase/", follow=True)
    request.refresh_from_db()
    assert request.status == "completed"
    assert b'data-status="done"' in answer.content
    assert User.objects.get(pk=world.client_user.pk).email.endswith("@erased.invalid")


def test_erasure_without_the_permission_is_refused(world: World) -> None:
    editor = signed_in(staff("ed@slotpay.example", *PRIVACY[:3]))
    request = file(editor, "clara@client.example", "erasure")
    step_up(editor)

    assert editor.post(f"{LIST}{request.pk}/erase/").status_code == 403
    assert not request.steps.exists()


def test_delete_on_a_person_is_an_erasure_never_a_cascade(world: World, privacy: Client) -> None:
    slot = paid_and_past(world)
    url = f"/admin/accounts/user/{world.client_user.pk}/delete/"
    page = privacy.get(url)
    assert page.status_code == 200
    assert b"carries out an erasure" in page.content
    assert "delete_selected" not in privacy.get("/admin/accounts/user/").content.decode()

    step_up(privacy)
    answer = privacy.post(url)

    request = DataSubjectRequest.objects.get(kind="erasure")
    assert answer["Location"] == f"{LIST}{request.pk}/change/"
    assert request.status == "completed"
    user = User.objects.get(pk=world.client_user.pk)  # still there, anonymised
    assert (user.name, user.is_active) == ("", False)
    assert slot.booking.client_id == user.pk
    assert slot.payment.amount == PRICE


def test_rectification_corrects_with_a_reason_audited(world: World, privacy: Client) -> None:
    request = file(privacy, "clara@client.example", "rectification")
    page = privacy.get(f"{LIST}{request.pk}/change/")
    assert b'value="Clara Client"' in page.content

    missing = privacy.post(
        f"{LIST}{request.pk}/rectify/",
        {"name": "Clara Klient", "email": "clara@client.example", "time_zone": "", "reason": ""},
    )
    assert missing.status_code == 302
    assert User.objects.get(pk=world.client_user.pk).name == "Clara Client"
    privacy.post(
        f"{LIST}{request.pk}/rectify/",
        {
            "name": "Clara Klient",
            "email": "clara.k@client.example",
            "time_zone": "Europe/Paris",
            "reason": "Misspelt at sign-up; letter of 3 May",
        },
    )

    user = User.objects.get(pk=world.client_user.pk)
    assert (user.name, user.email, user.time_zone) == (
        "Clara Klient",
        "clara.k@client.example",
        "Europe/Paris",
    )
    entry = AuditEntry.objects.get(action="accounts.user.rectified")
    assert entry.data["fields"] == ["name", "email", "time_zone"]
    assert entry.data["reason"] == "Misspelt at sign-up; letter of 3 May"
    assert "clara" not in json.dumps(entry.data)
    sealed = json.loads(entry.personal_data)["values"]
    assert sealed["name"] == {"from": "Clara Client", "to": "Clara Klient"}


def test_a_staff_account_is_not_rectified_here(world: World, privacy: Client) -> None:
    colleague = staff("pat@slotpay.example", "view_user")
    answer = privacy.post(
        f"{LIST}add/", {"subject_email": colleague.email, "kind": "rectification"}
    )

    assert answer.status_code == 403
    assert not DataSubjectRequest.objects.exists()
