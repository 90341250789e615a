"""The inbox in the back-office: readable, payload hidden, replay only with permission."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from accounts.models import User
from audit.models import AuditEntry
from tests.conftest import PASSWORD
from tests.webhooks.conftest import Sender
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/webhooks/webhookevent/"


@pytest.fixture
def dead_letter(stripe_sender: Sender, handlers) -> WebhookEvent:
    handlers.behaviour = [RuntimeError("down")] * 10
    stripe_sender.post()
    event = WebhookEvent.objects.get()
    WebhookEvent.objects.filter(pk=event.pk).update(status=WebhookEvent.Status.DEAD)
    handlers.behaviour = []
    return event


def test_staff_read_the_inbox_without_the_payload(client, staff, dead_letter) -> None:
    client.force_login(staff)
    assert client.get(CHANGELIST).status_code == 200
    page = client.get(f"{CHANGELIST}{dead_letter.pk}/change/")
    assert page.status_code == 200
    assert b"RuntimeError: down" in page.content
    assert dead_letter.event_id.encode() in page.content
    assert b"checkout.session.completed" in page.content
    assert b'"object": "checkout.session"' not in page.content  # the payload stays hidden
    assert client.get("/admin/webhooks/webhookrejection/").status_code == 200


def test_replay_from_the_admin_is_audited_with_the_staff_member(
    client, staff, dead_letter, handlers
) -> None:
    client.force_login(staff)
    response = client.post(
        CHANGELIST, {"action": "replay", "_selected_action": [dead_letter.pk]}, follow=True
    )
    assert response.status_code == 200
    dead_letter.refresh_from_db()
    assert dead_letter.status == WebhookEvent.Status.PROCESSED
    entry = AuditEntry.objects.get(action="webhooks.event.replayed")
    assert entry.actor_id == str(staff.pk)


def test_replay_needs_its_permission(client, dead_letter) -> None:
    viewer = User.objects.create_user(
        email="viewer@slotpay.example", password=PASSWORD, is_staff=True
    )
    viewer.user_permissions.add(Permission.objects.get(codename="view_webhookevent"))
    client.force_login(viewer)
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    assert "replay" not in response.context["cl"].model_admin.get_actions(response.wsgi_request)
    client.post(CHANGELIST, {"action": "replay", "_selected_action": [dead_letter.pk]})
    dead_letter.refresh_from_db()
    assert dead_letter.status == WebhookEvent.Status.DEAD
