"""The issue's seed cases for data-subject requests, end to end: the client asks on
their own page, Privacy answers in the back-office, the providers over real HTTP."""

from __future__ import annotations

import json
import re
from io import StringIO

import pytest
from django.core.management import call_command

from accounts.models import DataSubjectRequest, User
from audit.models import AuditEntry
from payments.models import Payment
from sandbox.calendly_sandbox.models import DataDeletionRequest
from sandbox.stripe_sandbox.models import StripeObject
from tests.accounts.test_dsr_admin import LIST, PRIVACY, download_links, signed_in, staff
from tests.accounts.test_dsr_export import (
    OTHER_EMAIL,
    OTHER_NAME,
    paid_and_past,
    paid_booking,
)
from tests.accounts.test_erasure import raw_scan
from tests.bookings.world import PRICE, World, world
from tests.conftest import step_up

__all__ = ["world"]

pytestmark = pytest.mark.django_db(transaction=True)


def client_asks(world: World, kind: str) -> DataSubjectRequest:
    """The client, on "My data", asks; the request is in Privacy's queue."""
    browser = world.browser(world.client_user)
    assert b"/accounts/privacy/" in browser.get("/bookings/").content
    answer = browser.post("/accounts/privacy/request/", {"kind": kind}, follow=True)
    assert b"We received your request" in answer.content
    return DataSubjectRequest.objects.get(kind=kind, subject=world.client_user)


def test_data_subject_access_request_process(world: World) -> None:
    slot = paid_booking(world)
    paid_booking(world, world.person(OTHER_EMAIL, OTHER_NAME))
    request = client_asks(world, "access")
    privacy = signed_in(staff("pia@slotpay.example", *PRIVACY))
    queue = privacy.get(LIST).content.decode()
    assert f"{LIST}{request.pk}/change/" in queue

    privacy.post(f"{LIST}{request.pk}/export/")
    export = json.loads(privacy.get(download_links(privacy, request)["json"]).content)
    page = privacy.get(download_links(privacy, request)["html"]).content.decode()
    privacy.post(f"{LIST}{request.pk}/close/", {"status": "completed"})

    sections = export["sections"]
    assert sections["accounts.account"]["data"]["email"] == "clara@client.example"
    assert sections["bookings.bookings"]["data"][0]["reference"] == str(slot.booking.reference)
    assert sections["payments.payments"]["data"]["payments"][0]["amount"] == PRICE
    assert sections["stripe.customers"]["data"]["customers"][0]["email"] == "clara@client.example"
    assert sections["calendly.invitees"]["data"][0]["name"] == "Clara Client"
    assert sections["audit.trail"]["data"]
    assert "Clara Client" in page
    text = json.dumps(export) + page
    assert OTHER_EMAIL not in text
    assert OTHER_NAME not in text
    request.refresh_from_db()
    assert request.status == "completed"
    assert [
        e.action
        for e in AuditEntry.objects.filter(
            target_id__in=[str(request.pk)], target_type="accounts.datasubjectrequest"
        ).order_by("sequence")
    ] == [
        "accounts.dsr.filed",
        "accounts.dsr.export_prepared",
        "accounts.dsr.completed",
    ]
    assert AuditEntry.objects.filter(action="accounts.dsr.export_downloaded").count() == 2


@pytest.mark.postgres
def test_data_deletion_process(world: World) -> None:
    slot = paid_and_past(world)
    payment = slot.payment
    request = client_asks(world, "erasure")
    privacy = signed_in(staff("pia@slotpay.example", *PRIVACY))
    step_up(privacy)

    answer = privacy.post(f"{LIST}{request.pk}/erase/", follow=True)

    request.refresh_from_db()
    assert request.status == "completed"
    assert len(re.findall(r'data-status="done"', answer.content.decode())) == request.steps.count()
    assert raw_scan("clara@client.example", "Clara Client") == []
    kept = Payment.objects.get(pk=payment.pk)
    assert (kept.amount, kept.checkout_session_id, kept.charge_id) == (
        PRICE,
        payment.checkout_session_id,
        payment.charge_id,
    )
    out = StringIO()
    call_command("audit_verify", stdout=out)
    assert "Audit chain verified" in out.getvalue()
    assert AuditEntry.objects.filter(action="audit.personal_data.redacted").exists()
    assert DataDeletionRequest.objects.get().invitees_erased == 1
    assert StripeObject.objects.get(id=payment.customer_id).data["deleted"] is True
    assert not User.objects.get(pk=world.client_user.pk).is_active
