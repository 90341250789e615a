"""Staff can read the audit trail in the admin and change nothing in it."""

import pytest

from audit import Category, record
from audit.models import AuditEntry
from audit.services import verify_chain

CHANGELIST = "/admin/audit/auditentry/"


@pytest.fixture
def signed_in(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def entry(db) -> AuditEntry:
    return record(
        "bookings.booking.created",
        category=Category.TRANSACTION,
        actor="bookings",
        data={"amount": "120.00"},
        personal_data={"email": "jane.doe@example.org"},
    )


def test_superuser_sees_the_changelist(signed_in, entry):
    response = signed_in.get(CHANGELIST)

    assert response.status_code == 200
    assert entry in response.context["cl"].result_list
    actions = response.context["cl"].model_admin.get_actions(response.wsgi_request)
    assert "delete_selected" not in actions


def test_the_entry_page_is_read_only_and_hides_personal_data(signed_in, entry):
    response = signed_in.get(f"{CHANGELIST}{entry.pk}/change/")

    assert response.status_code == 200
    assert b"bookings.booking.created" in response.content
    assert b"jane.doe" not in response.content
    assert b'name="_save"' not in response.content


def test_adding_is_refused(signed_in, entry):
    assert signed_in.get(f"{CHANGELIST}add/").status_code == 403
    assert signed_in.post(f"{CHANGELIST}add/", {"action": "forged"}).status_code == 403


def test_changing_is_refused(signed_in, entry):
    response = signed_in.post(
        f"{CHANGELIST}{entry.pk}/change/", {"action": "forged", "category": "security"}
    )

    assert response.status_code == 403
    assert AuditEntry.objects.get(pk=entry.pk).action == "bookings.booking.created"


def test_deleting_is_refused(signed_in, entry):
    assert signed_in.get(f"{CHANGELIST}{entry.pk}/delete/").status_code == 403
    response = signed_in.post(f"{CHANGELIST}{entry.pk}/delete/", {"post": "yes"})

    assert response.status_code == 403
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_bulk_delete_action_is_refused(signed_in, entry):
    signed_in.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"}
    )

    assert AuditEntry.objects.filter(pk=entry.pk).exists()
    assert verify_chain().ok
