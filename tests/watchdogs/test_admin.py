"""The alerts' list in the admin: open ones first, read-only, for superusers and
whoever holds ``core.view_alert`` (the Auditor group), nobody else."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from accounts.models import User
from core.models import Alert
from tests.conftest import PASSWORD

CHANGELIST = "/admin/core/alert/"

pytestmark = pytest.mark.django_db


@pytest.fixture
def incidents() -> list[Alert]:
    earlier = timezone.now() - timedelta(days=1)
    return [
        Alert.objects.create(key="reconcile.failed", summary="old", opened_at=earlier),
        Alert.objects.create(
            key="webhooks.dead_letters", summary="done", cleared_at=timezone.now()
        ),
        Alert.objects.create(key="payments.refunds_stuck", summary="now"),
    ]


def _staff(**fields: Any) -> User:
    return User.objects.create_user(
        email="someone@slotpay.example", password=PASSWORD, is_staff=True, **fields
    )


def test_the_superuser_sees_open_incidents_first(
    client: Client, staff: User, incidents: list[Alert]
) -> None:
    client.force_login(staff)

    answer = client.get(CHANGELIST)

    assert answer.status_code == 200
    assert [a.key for a in answer.context["cl"].result_list] == [
        "payments.refunds_stuck",
        "reconcile.failed",
        "webhooks.dead_letters",
    ]
    assert [a.key for a in client.get(f"{CHANGELIST}?state=open").context["cl"].result_list] == [
        "payments.refunds_stuck",
        "reconcile.failed",
    ]


def test_nobody_changes_or_deletes_an_alert(
    client: Client, staff: User, incidents: list[Alert]
) -> None:
    client.force_login(staff)
    alert = incidents[0]

    page = client.get(f"{CHANGELIST}{alert.pk}/change/")

    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert client.get(f"{CHANGELIST}add/").status_code == 403
    assert client.post(f"{CHANGELIST}{alert.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Alert.objects.count() == 3


def test_staff_with_the_view_permission_see_it_and_others_do_not(
    client: Client, incidents: list[Alert]
) -> None:
    member = _staff()
    client.force_login(member)
    assert client.get(CHANGELIST).status_code == 403

    member.user_permissions.add(Permission.objects.get(codename="view_alert"))
    member = User.objects.get(pk=member.pk)  # permissions are cached per instance
    client.force_login(member)

    assert client.get(CHANGELIST).status_code == 200
