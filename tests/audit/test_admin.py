"""Staff can read the audit trail in the admin and change nothing in it."""

import json
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from accounts.models import User
from audit import Category, record
from audit.checkpoints import checkpoint_write
from audit.models import AuditEntry, SecurityEventCount
from audit.services import verify_chain
from audit.tasks import verify_chain as verify_chain_task
from tests.audit.tamper import trigger_disabled
from tests.conftest import PASSWORD

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


def test_the_list_shows_queued_entries_and_how_long_they_have_waited(signed_in, entry):
    # The test's transaction never commits: the entry is still queued, listed all the same.
    response = signed_in.get(CHANGELIST)

    assert entry in response.context["cl"].result_list
    assert re.search(
        rb"Integration: \d+ entries waiting to be integrated, the oldest written \d+\.\d s ago\.",
        response.content,
    )

    verify_chain()  # integrates what is committed first
    response = signed_in.get(CHANGELIST)
    assert b"Integration: no entry waiting to be integrated." in response.content
    response = signed_in.post(f"{CHANGELIST}verify/")
    assert b"Integration: no entry waiting to be integrated." in response.content


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


# --- Finding entries ------------------------------------------------------------------


@pytest.fixture
def trail(db) -> dict[str, AuditEntry]:
    return {
        "refund": record(
            "payments.refund.succeeded",
            category=Category.TRANSACTION,
            actor="webhooks.stripe",
            target=("payments.refund", 7),
        ),
        "payment": record(
            "payments.payment.paid",
            category=Category.TRANSACTION,
            actor="webhooks.stripe",
            target=("payments.payment", 8),
        ),
        "login": record(
            "bookings.booking.viewed",
            category=Category.ACCESS,
            actor=None,
            target=("bookings.booking", 8),
        ),
    }


def _listed(client, query: str) -> set[str]:
    response = client.get(f"{CHANGELIST}?{query}")
    assert response.status_code == 200
    return {entry.action for entry in response.context["cl"].result_list}


def test_entries_are_found_by_action_prefix_actor_and_target(signed_in, trail):
    assert _listed(signed_in, "action_prefix=payments.") == {
        "payments.refund.succeeded",
        "payments.payment.paid",
    }
    assert _listed(signed_in, "action_prefix=payments.refund") == {"payments.refund.succeeded"}
    assert _listed(signed_in, "q=payments.payment") == {"payments.payment.paid"}
    assert _listed(signed_in, "actor=webhooks.stripe&target=8") == {"payments.payment.paid"}
    assert _listed(signed_in, "target_type=bookings.booking") == {"bookings.booking.viewed"}
    assert _listed(signed_in, "actor_type__exact=anonymous&target=8") == {"bookings.booking.viewed"}
    assert _listed(signed_in, "category__exact=access&action_prefix=payments") == set()


def test_the_list_has_the_filters_and_the_date_hierarchy(signed_in, trail):
    response = signed_in.get(f"{CHANGELIST}?action_prefix=payments.&category__exact=transaction")

    page = response.content.decode()
    for title in ("action (name or prefix)", "actor id", "target id", "target type"):
        assert f'data-filter-title="{title}"' in page
    # The text boxes keep the other filters.
    assert '<input type="hidden" name="category__exact" value="transaction">' in page
    assert 'value="payments."' in page
    assert response.context["cl"].date_hierarchy == "created_at"


def test_personal_data_cannot_be_looked_up_in_the_url(signed_in, entry):
    assert signed_in.get(f"{CHANGELIST}?personal_data__isnull=0").status_code == 400
    assert signed_in.get(f"{CHANGELIST}?personal_data__contains=jane").status_code == 400


# --- Verify chain ---------------------------------------------------------------------

VERIFY = f"{CHANGELIST}verify/"


def test_the_list_links_to_the_verify_page(signed_in, entry):
    assert f'href="{VERIFY}"' in signed_in.get(CHANGELIST).content.decode()


def test_get_shows_the_button_and_verifies_nothing(signed_in, entry):
    response = signed_in.get(VERIFY)

    assert response.status_code == 200
    assert b'<form method="post">' in response.content
    assert b"The chain verifies" not in response.content
    assert not AuditEntry.objects.filter(action="audit.chain.verified").exists()


def test_post_verifies_the_chain_and_the_latest_checkpoint(signed_in, staff, entry):
    checkpoint_write(actor="tests")
    entries = AuditEntry.objects.count()

    response = signed_in.post(VERIFY)

    page = response.content.decode()
    assert f"{entries} entries checked" in page
    assert "The latest checkpoint matches" in page
    verified = AuditEntry.objects.get(action="audit.chain.verified")
    assert (verified.actor_type, verified.actor_id) == ("user", str(staff.pk))
    assert verified.data["ok"] is True


@pytest.mark.postgres
def test_post_names_the_first_broken_entry_and_a_checkpoint_that_no_longer_matches(
    signed_in, entry
):
    checkpoint = checkpoint_write(actor="tests")
    signed = AuditEntry.objects.get(stream=checkpoint.stream, position=checkpoint.position)
    with trigger_disabled():
        AuditEntry.objects.filter(pk=signed.pk).update(action="forged", entry_hash="f" * 64)

    page = signed_in.post(VERIFY).content.decode()

    assert f"at entry #{signed.sequence} (forged" in page
    assert "entry_hash does not match" in page
    assert "The latest checkpoint does not match" in page
    assert AuditEntry.objects.get(action="audit.chain.verified").data["ok"] is False


def _staff_with(*codenames: str) -> User:
    user = User.objects.create_user(
        email=f"{'-'.join(codenames) or 'none'}@slotpay.example", password=PASSWORD, is_staff=True
    )
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def test_verifying_needs_the_view_permission(client, entry):
    client.force_login(_staff_with("view_securityeventcount"))

    assert client.get(VERIFY).status_code == 403
    refused = client.get("/admin/audit/auditentry/")
    assert refused.status_code == 403
    assert b"waiting to be integrated" not in refused.content  # not said to the refused
    assert client.post(VERIFY).status_code == 403
    assert not AuditEntry.objects.filter(action="audit.chain.verified").exists()


def test_an_auditor_with_the_view_permission_verifies(client, entry):
    auditor = _staff_with("view_auditentry")
    client.force_login(auditor)

    assert b"The chain verifies" in client.post(VERIFY).content
    assert AuditEntry.objects.get(action="audit.chain.verified").actor_id == str(auditor.pk)


# --- Checkpoints ----------------------------------------------------------------------

CHECKPOINTS = "/admin/audit/auditcheckpoint/"
EXPORT = f"{CHECKPOINTS}export/"


def test_checkpoints_are_listed_read_only_and_exported_by_post(signed_in, staff, entry):
    checkpoint = checkpoint_write(actor="tests")

    listing = signed_in.get(CHECKPOINTS)
    assert checkpoint in listing.context["cl"].result_list
    assert f'action="{EXPORT}"' in listing.content.decode()
    detail = signed_in.get(f"{CHECKPOINTS}{checkpoint.pk}/change/").content.decode()
    assert "\u2014 slotpay audit testserver/transaction " in detail
    assert 'name="_save"' not in detail
    assert signed_in.get(f"{CHECKPOINTS}add/").status_code == 403
    assert (
        signed_in.post(f"{CHECKPOINTS}{checkpoint.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    assert signed_in.get(EXPORT).status_code == 405

    response = signed_in.post(EXPORT)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-checkpoints-')
    (line,) = response.content.decode().splitlines()
    assert json.loads(line)["position"] == checkpoint.position
    exported = AuditEntry.objects.get(action="audit.checkpoints.exported")
    assert (exported.actor_type, exported.actor_id) == ("user", str(staff.pk))


def test_exporting_needs_the_checkpoint_view_permission(client, entry):
    client.force_login(_staff_with("view_auditentry"))

    assert client.post(EXPORT).status_code == 403
    assert not AuditEntry.objects.filter(action="audit.checkpoints.exported").exists()
    client.force_login(_staff_with("view_auditcheckpoint"))
    assert client.post(EXPORT).status_code == 200


# --- Security event counts ------------------------------------------------------------


def test_the_hourly_task_drops_security_counts_older_than_90_days(db):
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    for days in (0, 89, 91, 400):
        SecurityEventCount.objects.create(
            action="accounts.login.failed",
            hour=now - timedelta(days=days),
            count=3,
            last_seen_at=now - timedelta(days=days),
        )

    outcome = verify_chain_task.delay().get()

    assert outcome["security_event_counts_purged"] == 2
    kept = SecurityEventCount.objects.values_list("hour", flat=True)
    assert sorted(now - hour for hour in kept) == [timedelta(0), timedelta(days=89)]
    purged = AuditEntry.objects.get(action="audit.security_event_counts.purged")
    assert (purged.actor_id, purged.data["rows"]) == ("audit.retention", 2)


def test_security_counts_are_read_only(signed_in):
    assert signed_in.get("/admin/audit/securityeventcount/").status_code == 200
    assert signed_in.get("/admin/audit/securityeventcount/add/").status_code == 403
