"""The outside review's findings on the back-office's data-subject requests: a wrong
correction is a clear error (never a 500), the dates and the handler cannot be
bent, a staff member's data is not a Privacy member's to export, and every time
shown says its zone."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from accounts import dsr
from accounts.models import DataSubjectRequest, User
from audit.models import AuditEntry
from tests.accounts.test_dsr_admin import LIST, PRIVACY, file, signed_in, staff
from tests.accounts.test_dsr_export import paid_booking
from tests.bookings.world import World, world
from tests.conftest import PASSWORD, step_up

__all__ = ["world"]

pytestmark = pytest.mark.django_db(transaction=True)

CLARA = "clara@client.example"


@pytest.fixture
def privacy(world: World) -> Client:
    return signed_in(staff("pia@slotpay.example", *PRIVACY))


def said(answer: object) -> str:
    return " ".join(str(m) for m in get_messages(answer.wsgi_request))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("time_zone", "Mars/Olympus", "Not an IANA time zone"),
        ("time_zone", "../../etc/passwd", "Not an IANA time zone"),
        ("time_zone", "localtime", "Not an IANA time zone"),  # the server's own, not a zone
        ("time_zone", "x" * 100_000, "at most 64 characters"),
        ("name", "Clara\x00Client", "Null characters are not allowed"),
        ("name", "C" * 100_000, "at most 200 characters"),
        ("email", "clara@@client", "Enter a valid email address"),
        ("email", "clara\x00@client.example", "Null characters are not allowed"),
        ("email", "otto@other.example", "Another account has this email address"),
        ("email", "OTTO@other.example ", "Another account has this email address"),
    ],
)
def test_a_wrong_correction_is_a_clear_error_and_nothing_is_saved(
    world: World, privacy: Client, field: str, value: str, error: str
) -> None:
    world.person("otto@other.example", "Otto Other")
    request = file(privacy, CLARA, "rectification")
    posted = {
        "name": "Clara Klient",
        "email": CLARA,
        "time_zone": "Europe/Paris",
        "reason": "Letter of 3 May",
        field: value,
    }

    answer = privacy.post(f"{LIST}{request.pk}/rectify/", posted)

    assert answer.status_code == 302
    assert error in said(answer)
    assert "Not corrected." in said(answer)
    user = User.objects.get(pk=world.client_user.pk)
    assert (user.name, user.email, user.time_zone) == ("Clara Client", CLARA, "")
    assert not AuditEntry.objects.filter(action="accounts.user.rectified").exists()
    page = privacy.get(f"{LIST}{request.pk}/change/")
    assert page.status_code == 200


def test_the_service_refuses_a_bad_value_too(world: World, privacy: Client) -> None:
    """Behind the form, the service checks each value as the model does."""
    request = file(privacy, CLARA, "rectification")
    officer = User.objects.get_by_email("pia@slotpay.example")
    for changes in (
        {"time_zone": "Mars/Olympus"},
        {"name": "C" * 100_000},
        {"name": "a\x00b"},
        {"email": "not an email"},
    ):
        with pytest.raises(dsr.DsrRefused):
            dsr.subject_rectify(request=request, actor=officer, changes=changes, reason="Letter")
    assert User.objects.get(pk=world.client_user.pk).name == "Clara Client"


def change(browser: Client, request: DataSubjectRequest, **posted: str) -> object:
    data = {"handler": "", "notes": "", **posted}
    return browser.post(f"{LIST}{request.pk}/change/", data)


@pytest.mark.parametrize("due", ["2099-01-01", "2000-01-01"])
def test_the_due_date_cannot_be_moved(world: World, privacy: Client, due: str) -> None:
    request = file(privacy, CLARA, "access")
    due_at = DataSubjectRequest.objects.get(pk=request.pk).due_at
    assert due_at == request.received_at + timedelta(days=30)
    page = privacy.get(f"{LIST}{request.pk}/change/").content.decode()
    assert 'name="due_at_0"' not in page
    assert 'name="received_at_0"' not in page

    answer = change(
        privacy,
        request,
        due_at_0=due,
        due_at_1="00:00:00",
        received_at_0=due,
        received_at_1="00:00:00",
    )

    assert answer.status_code == 302  # saved what may change: nothing else
    kept = DataSubjectRequest.objects.get(pk=request.pk)
    assert (kept.due_at, kept.received_at) == (due_at, request.received_at)


def test_the_handler_is_an_active_privacy_member_or_a_superuser(
    world: World, privacy: Client
) -> None:
    request = file(privacy, CLARA, "access")
    pia = User.objects.get_by_email("pia@slotpay.example")
    support = staff("sue@slotpay.example", "view_user")
    gone = staff("gus@slotpay.example", "change_datasubjectrequest")
    User.objects.filter(pk=gone.pk).update(is_active=False)
    colleague = staff("pam@slotpay.example", "change_datasubjectrequest")
    root = User.objects.create_superuser(email="root@slotpay.example", password=PASSWORD)

    for refused in (world.client_user, support, gone):
        answer = change(privacy, request, handler=str(refused.pk))
        assert answer.status_code == 200, refused  # the form again, with the error
        assert b"Select a valid choice" in answer.content
        assert DataSubjectRequest.objects.get(pk=request.pk).handler_id == pia.pk

    for allowed in (colleague, root):
        assert change(privacy, request, handler=str(allowed.pk)).status_code == 302
        assert DataSubjectRequest.objects.get(pk=request.pk).handler_id == allowed.pk
    entries = AuditEntry.objects.filter(action="accounts.dsr.handler_changed")
    assert [e.data["handler"] for e in entries.order_by("sequence")] == [colleague.pk, root.pk]


def test_privacy_cannot_file_or_export_a_staff_members_request(
    world: World, privacy: Client
) -> None:
    root = User.objects.create_superuser(email="root@slotpay.example", password=PASSWORD)
    support = staff("sue@slotpay.example", "view_user")
    pia = User.objects.get_by_email("pia@slotpay.example")

    for colleague in (root, support):
        answer = privacy.post(
            f"{LIST}add/", {"subject_email": colleague.email, "kind": "access", "notes": ""}
        )
        assert answer.status_code == 403
        with pytest.raises(dsr.DsrRefused):
            dsr.dsr_file(subject=colleague, kind="access", actor=pia)
    assert not DataSubjectRequest.objects.exists()

    # A staff member may ask for their own; a superuser prepares it, not Privacy.
    own = dsr.dsr_file(subject=support, kind="access", actor=support, filed_by_subject=True)
    answer = privacy.post(f"{LIST}{own.pk}/export/", follow=True)
    assert "prepared by a superuser" in said(answer)
    own.refresh_from_db()
    assert (own.export, own.export_version) == (None, 0)
    assert dsr.dsr_export_prepare(request=own, actor=root) == 1

    by_root = dsr.dsr_file(subject=root, kind="access", actor=root)
    assert dsr.dsr_export_prepare(request=by_root, actor=root) == 1


def test_a_builders_member_is_a_person_like_any_client(world: World, privacy: Client) -> None:
    """Not staff: their own data is theirs to ask for, through Privacy."""
    member = world.builder_user
    assert not member.is_staff
    assert member.memberships.exists()

    request = file(privacy, member.email, "access")

    pia = User.objects.get_by_email("pia@slotpay.example")
    assert dsr.dsr_export_prepare(request=request, actor=pia) == 1


def test_marking_a_request_completed_says_so(world: World, privacy: Client) -> None:
    request = file(privacy, CLARA, "access")
    privacy.get(f"{LIST}{request.pk}/change/")  # the filing's message read

    answer = privacy.post(f"{LIST}{request.pk}/close/", {"status": "completed"}, follow=True)

    request.refresh_from_db()
    assert request.status == "completed"
    assert f"Access (export) request {request.pk} is completed" in said(answer)
    assert f"{request.completed_at:%Y-%m-%d %H:%M} UTC" in said(answer)
    assert b"is completed" in answer.content  # shown on the page it lands on


def test_the_readable_export_shows_times_in_utc_saying_so(world: World, privacy: Client) -> None:
    request = file(privacy, CLARA, "access")
    pia = User.objects.get_by_email("pia@slotpay.example")
    dsr.dsr_export_prepare(request=request, actor=pia)
    request.refresh_from_db()

    text = dsr.dsr_export_download(request=request, fmt="html", actor=pia).content.decode()

    joined = User.objects.get(pk=world.client_user.pk).date_joined
    assert f"<td>{joined.astimezone(UTC):%Y-%m-%d %H:%M} UTC</td>" in text
    assert "Times are in UTC" in text
    assert not re.search(r"\d{2}:\d{2}:\d{2}(\.\d+)?\+00:00", text)
    assert not re.search(r"\d{4}-\d{2}-\d{2}T\d{2}", text)
    # The JSON keeps the exact values.
    data = dsr.dsr_export_download(request=request, fmt="json", actor=pia).content.decode()
    assert "+00:00" in data


@pytest.mark.parametrize(("zone", "hours"), [("", 0), ("Asia/Tokyo", 9)])
def test_every_time_on_a_request_says_its_zone(
    world: World, privacy: Client, zone: str, hours: int
) -> None:
    pia = User.objects.get_by_email("pia@slotpay.example")
    User.objects.filter(pk=pia.pk).update(time_zone=zone)
    request = file(privacy, CLARA, "erasure")
    request = dsr.subject_erase(request=request, actor=pia)
    assert request.status == "completed"
    label = zone or "UTC"

    def shown(value: datetime) -> str:
        return f"{(value.astimezone(UTC) + timedelta(hours=hours)):%Y-%m-%d %H:%M} {label}"

    page = privacy.get(f"{LIST}{request.pk}/change/").content.decode()
    step = request.steps.get(name="accounts.account")
    row = re.search(r'<tr data-step="accounts.account".*?</tr>', page, re.S)
    assert row is not None
    assert f"<td>{shown(step.updated_at)}</td>" in row.group(0)
    for value in (request.received_at, request.due_at, request.completed_at):
        assert shown(value) in page
    listing = privacy.get(f"{LIST}?state=all").content.decode()
    assert shown(request.received_at) in listing
    assert shown(request.due_at) in listing


def test_a_held_erasure_in_the_back_office_erases_nothing_and_says_why_once(
    world: World, privacy: Client
) -> None:
    slot = paid_booking(world)
    slot.booking.dispute(actor="webhooks.stripe", reason="charge.dispute.created")
    request = file(privacy, CLARA, "erasure")
    step_up(privacy)

    answer = privacy.post(f"{LIST}{request.pk}/erase/", follow=True)

    request.refresh_from_db()
    assert (request.status, request.steps.count()) == ("held", 0)
    reason = f"Booking {slot.booking.reference} is disputed: kept for the dispute."
    assert request.hold_reason == reason
    assert "nothing was erased" in said(answer)
    holds = re.search(r'<ul class="dsr-holds">(.*?)</ul>', answer.content.decode(), re.S)
    assert holds is not None
    assert holds.group(1).count("<li>") == 1
    assert User.objects.get(pk=world.client_user.pk).is_active


def test_a_staff_members_own_export_holds_none_of_the_clients_they_corrected(
    world: World,
) -> None:
    """What a Privacy member did is theirs to see; the client's old and new name in
    that entry's sealed part are the client's, not theirs."""
    officer = staff("pia@slotpay.example", *PRIVACY)
    correction = dsr.dsr_file(subject=world.client_user, kind="rectification", actor=officer)
    dsr.subject_rectify(
        request=correction,
        actor=officer,
        changes={"name": "Clara Corrected"},
        reason="The client wrote in with the right spelling",
    )

    own = json.dumps(dsr.subject_export(subject=officer), default=str)

    assert "Clara" not in own
    assert "[about someone else: left out]" in own
    assert "accounts.user.changed" in own or "accounts.dsr" in own  # the fact is there
    # The client's own export still has it.
    assert "Clara Corrected" in json.dumps(dsr.subject_export(subject=world.client_user))
