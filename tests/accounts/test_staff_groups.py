"""Each staff group holds exactly the permissions its job needs, and nothing more.

The sets are stated here in full (accounts/migrations/0006 to 0009 give them): a permission
added to a group by a later migration has to be added here too, on purpose.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client

from accounts.models import User
from accounts.roles import STAFF_GROUP_PERMISSIONS
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

GROUPS = ("Support", "Finance", "Privacy", "Auditor")


def _permissions(group_name: str) -> set[str]:
    group = Group.objects.get(name=group_name)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}


def _member(group: str | None) -> Client:
    user = User.objects.create_user(
        email=f"{group or 'root'}@slotpay.example".lower(),
        password=PASSWORD,
        name=f"{group} Member",
        is_staff=True,
        is_superuser=group is None,
    )
    if group:
        user.groups.add(Group.objects.get(name=group))
    browser = Client()
    browser.force_login(user)
    return browser


def test_support_reads_bookings_payments_and_people_masked_and_may_reveal() -> None:
    assert _permissions("Support") == {
        "accounts.view_user",
        "accounts.view_builder",
        "accounts.view_buildermembership",
        "accounts.reveal_personal_data",
        "bookings.view_booking",
        "bookings.view_eventtype",
        "payments.view_payment",
        "payments.view_refund",
        "payments.view_dispute",
        "bookings.view_drift",
        "bookings.send_claim",
    }


def test_finance_moves_money_and_approves_anothers_refund() -> None:
    assert _permissions("Finance") == {
        "accounts.view_builder",
        "bookings.view_booking",
        "bookings.cancel_for_client",
        "payments.view_payment",
        "payments.view_refund",
        "payments.view_refundapproval",
        "payments.issue_refund",
        "payments.approve_refund",
        "payments.view_dispute",
        "bookings.view_drift",
        "core.view_alert",
    }


def test_privacy_answers_data_subject_requests() -> None:
    assert _permissions("Privacy") == {
        "accounts.view_user",
        "accounts.view_personal_data",
        "accounts.view_datasubjectrequest",
        "accounts.add_datasubjectrequest",
        "accounts.change_datasubjectrequest",
        "accounts.carry_out_erasure",
        "bookings.view_booking",
        "core.view_alert",
    }


def test_auditors_read_the_trail_and_the_inbox_and_change_nothing() -> None:
    assert _permissions("Auditor") == {
        "audit.view_auditentry",
        "audit.view_auditcheckpoint",
        "audit.view_securityeventcount",
        "webhooks.view_webhookevent",
        "core.view_alert",
        "accounts.review_access",
    }


def test_no_group_may_delete_anything_or_touch_rights() -> None:
    for group in GROUPS:
        for permission in _permissions(group):
            app_label, codename = permission.split(".")
            assert not codename.startswith("delete_"), permission
            assert app_label != "auth", permission


# (page, the groups that may open it); None is a superuser.
PAGES = [
    ("/admin/accounts/user/", {"Support", "Privacy", None}),
    ("/admin/bookings/booking/", {"Support", "Finance", "Privacy", None}),
    ("/admin/payments/payment/", {"Support", "Finance", None}),
    ("/admin/payments/refund/", {"Support", "Finance", None}),
    ("/admin/payments/refundapproval/", {"Finance", None}),
    ("/admin/accounts/datasubjectrequest/", {"Privacy", None}),
    ("/admin/audit/auditentry/", {"Auditor", None}),
    ("/admin/audit/auditcheckpoint/", {"Auditor", None}),
    ("/admin/webhooks/webhookevent/", {"Auditor", None}),
    ("/admin/payments/dispute/", {"Support", "Finance", None}),
    ("/admin/bookings/drift/", {"Support", "Finance", None}),
    ("/admin/core/alert/", {"Auditor", "Finance", "Privacy", None}),
    ("/admin/accounts/user/access-review/", {"Auditor", None}),
    ("/admin/auth/group/", {None}),
    ("/admin/otp_totp/totpdevice/", {None}),
    ("/admin/audit/auditentry/add/", set()),  # nobody writes the trail by hand
    ("/admin/payments/payment/add/", set()),
    ("/admin/bookings/booking/add/", set()),
]


@pytest.mark.parametrize("group", [*GROUPS, None])
def test_least_privilege_enforcement(group: str | None) -> None:
    """Each role, signed in, walks every back-office list: it opens its own and is
    refused (403, the back-office's own page) everywhere else."""
    browser = _member(group)

    for page, allowed in PAGES:
        status = browser.get(page).status_code
        assert status == (200 if group in allowed else 403), (group, page, status)


def test_the_stated_sets_are_the_roles_module() -> None:
    assert {name: set(perms) for name, perms in STAFF_GROUP_PERMISSIONS.items()} == {
        name: _permissions(name) for name in GROUPS
    }


@pytest.mark.django_db(transaction=True)
def test_a_missing_group_comes_back_with_its_permissions_and_an_edited_one_is_kept() -> None:
    """A flushed database (a transactional test, a fresh install) gets its groups back;
    a superuser's deliberate change to an existing group survives the next migrate."""
    Group.objects.filter(name="Auditor").delete()
    Group.objects.get(name="Support").permissions.clear()

    call_command("migrate", verbosity=0)

    assert _permissions("Auditor") == set(STAFF_GROUP_PERMISSIONS["Auditor"])
    assert _permissions("Support") == set()


def test_an_auditor_reads_everything_it_is_given_and_changes_nothing() -> None:
    """Every write an auditor might try by hand, on what it may read: refused."""
    from audit.models import AuditEntry
    from audit.services import record, verify_chain

    entry = record("tests.fact", category="data", actor="tests")
    browser = _member("Auditor")
    writes = [
        (f"/admin/audit/auditentry/{entry.pk}/change/", {"action": "tests.rewritten"}),
        (f"/admin/audit/auditentry/{entry.pk}/delete/", {"post": "yes"}),
        ("/admin/audit/auditentry/", {"action": "delete_selected", "_selected_action": [entry.pk]}),
        ("/admin/audit/auditentry/add/", {"action": "tests.forged", "category": "data"}),
        ("/admin/webhooks/webhookevent/", {"action": "replay_selected", "_selected_action": ["1"]}),
        ("/admin/accounts/user/add/", {"email": "x@example.org"}),
    ]

    for url, form in writes:
        assert browser.post(url, form).status_code in (200, 302, 403), url  # never done

    tests_entries = AuditEntry.objects.filter(action__startswith="tests.")
    assert list(tests_entries.values_list("pk", "action")) == [(entry.pk, "tests.fact")]
    assert verify_chain().ok
    assert browser.get("/admin/audit/auditentry/").status_code == 200
    assert browser.get(f"/admin/audit/auditentry/{entry.pk}/change/").status_code == 200
