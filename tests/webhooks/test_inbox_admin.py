"""The inbox in the back-office: read-only, the payload masked, counts of the last day,
and "Replay" for failed and dead events only with the permission and a fresh step-up."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from accounts.models import User
from audit.models import AuditEntry
from tests.conftest import PASSWORD, step_up
from tests.webhooks.conftest import Recorder, Sender, calendly_event
from webhooks.admin import masked
from webhooks.models import WebhookEvent, WebhookRejection

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/webhooks/webhookevent/"
REPLAY = "replay_selected"


@pytest.fixture
def dead_letter(stripe_sender: Sender, handlers: Recorder) -> WebhookEvent:
    handlers.behaviour = [RuntimeError("down")] * 10
    stripe_sender.post()
    event = WebhookEvent.objects.get()
    WebhookEvent.objects.filter(pk=event.pk).update(status=WebhookEvent.Status.DEAD)
    handlers.behaviour = []
    return event


@pytest.fixture
def processed(calendly_sender: Sender, handlers: Recorder) -> WebhookEvent:
    data = calendly_event("invitee.created")
    data["payload"]["email"] = "jane.doe@example.org"
    data["payload"]["name"] = "Jane Doe"
    data["payload"]["questions_and_answers"] = [{"question": "Why?", "answer": "My knee"}]
    calendly_sender.post(data)
    return WebhookEvent.objects.get(provider="calendly")


def _staff_with(*codenames: str) -> User:
    user = User.objects.create_user(
        email=f"{'-'.join(codenames)}@slotpay.example", password=PASSWORD, is_staff=True
    )
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def _replay(client: Client, *events: WebhookEvent, **extra: object):
    return client.post(
        CHANGELIST, {"action": REPLAY, "_selected_action": [event.pk for event in events]}, **extra
    )


def _replays() -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action="webhooks.event.replayed"))


# --- Reading --------------------------------------------------------------------------


def test_the_payload_is_shown_masked_and_pretty(client, staff, processed) -> None:
    assert processed.status == WebhookEvent.Status.PROCESSED
    client.force_login(staff)

    page = client.get(f"{CHANGELIST}{processed.pk}/change/").content.decode()

    assert "jane.doe@example.org" not in page
    assert "jane.doe" not in page
    assert "Jane Doe" not in page
    assert "My knee" not in page
    assert "j***@e***.org" in page  # the masked email: enough to tell cases apart
    assert "&quot;event&quot;: &quot;invitee.created&quot;" in page  # pretty JSON, escaped
    assert "\n  &quot;payload&quot;: {" in page
    assert "[redacted]" in page
    assert "&quot;Calendly-Webhook-Signature&quot;: &quot;[redacted]&quot;" in page


def test_a_purged_payload_says_so(client, staff, processed) -> None:
    WebhookEvent.objects.filter(pk=processed.pk).update(
        payload=None, payload_purged_at="2026-01-01T00:00Z"
    )
    client.force_login(staff)

    page = client.get(f"{CHANGELIST}{processed.pk}/change/").content.decode()

    assert "purged" in page


def test_the_list_filters_by_provider_type_status_and_time(
    client, staff, dead_letter, processed
) -> None:
    client.force_login(staff)

    response = client.get(f"{CHANGELIST}?provider__exact=calendly&status__exact=processed")

    assert list(response.context["cl"].result_list) == [processed]
    specs = {spec.title for spec in response.context["cl"].filter_specs}
    assert {"provider", "status", "event type", "received at"} <= specs
    assert response.context["cl"].date_hierarchy == "received_at"
    by_type = client.get(f"{CHANGELIST}?event_type=checkout.session.completed")
    assert list(by_type.context["cl"].result_list) == [dead_letter]


def test_the_list_counts_the_last_day_per_status_and_rejection(
    client, staff, dead_letter, processed, stripe_sender
) -> None:
    stripe_sender.post(header="t=1,v1=forged")
    stripe_sender.post(header="t=1,v1=forged")
    (reason,) = WebhookRejection.objects.values_list("reason", flat=True)
    client.force_login(staff)

    response = client.get(CHANGELIST)

    counts = response.context["last_day"]
    assert dict(counts["per_status"]) == {"Dead letter": 1, "Processed": 1}
    assert counts["rejections"] == [("stripe", reason, 2)]
    page = response.content.decode()
    assert f"<td>stripe</td><td>{reason}</td><td>2</td>" in page
    assert "<td>Dead letter</td><td>1</td>" in page


def test_nothing_can_be_added_changed_or_deleted(client, staff, dead_letter) -> None:
    client.force_login(staff)

    assert client.get(f"{CHANGELIST}add/").status_code == 403
    assert client.post(f"{CHANGELIST}{dead_letter.pk}/delete/", {"post": "yes"}).status_code == 403
    page = client.get(f"{CHANGELIST}{dead_letter.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    client.post(
        CHANGELIST,
        {"action": "delete_selected", "_selected_action": [dead_letter.pk], "post": "yes"},
    )
    assert WebhookEvent.objects.filter(pk=dead_letter.pk).exists()


# --- Replaying ------------------------------------------------------------------------


def test_without_the_permission_there_is_no_replay(client, dead_letter) -> None:
    viewer = _staff_with("view_webhookevent")
    client.force_login(viewer)
    step_up(client)

    response = client.get(CHANGELIST)
    assert REPLAY not in response.context["cl"].model_admin.get_actions(response.wsgi_request)
    assert _replay(client, dead_letter).status_code == 403  # a hand-made POST

    dead_letter.refresh_from_db()
    assert dead_letter.status == WebhookEvent.Status.DEAD
    assert _replays() == []


def test_with_the_permission_but_no_step_up_nothing_is_replayed(client, dead_letter) -> None:
    operator = _staff_with("view_webhookevent", "replay_webhookevent")
    client.force_login(operator)

    response = _replay(client, dead_letter)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/step-up/?next=")
    dead_letter.refresh_from_db()
    assert dead_letter.status == WebhookEvent.Status.DEAD
    assert _replays() == []


def test_a_stepped_up_operator_replays_and_is_named_in_the_audit_trail(
    client, dead_letter, processed, handlers
) -> None:
    operator = _staff_with("view_webhookevent", "replay_webhookevent")
    client.force_login(operator)
    step_up(client)
    handled_before = len(handlers.calls)

    response = _replay(client, dead_letter, processed, follow=True)

    assert response.status_code == 200
    dead_letter.refresh_from_db()
    assert dead_letter.status == WebhookEvent.Status.PROCESSED
    assert handlers.ids()[handled_before:] == [dead_letter.event_id]  # the processed one stays
    messages = [str(message) for message in response.context["messages"]]
    assert any("skipped: processed" in message for message in messages)
    (replayed,) = _replays()
    assert (replayed.actor_type, replayed.actor_id) == ("user", str(operator.pk))
    assert replayed.target_id == str(dead_letter.pk)
    assert replayed.data["previous_status"] == "dead"
    assert replayed.data["reason"] == "replayed from the admin inbox"


def test_a_failed_event_is_replayable_too(client, stripe_sender, handlers) -> None:
    handlers.behaviour = [RuntimeError("down")]
    stripe_sender.post()
    failed = WebhookEvent.objects.get()
    assert failed.status == WebhookEvent.Status.FAILED
    client.force_login(_staff_with("view_webhookevent", "replay_webhookevent"))
    step_up(client)

    _replay(client, failed)

    failed.refresh_from_db()
    assert failed.status == WebhookEvent.Status.PROCESSED
    assert json.loads(failed.payload)["id"] == failed.event_id


def test_masking_reaches_keys_nested_lists_and_card_numbers() -> None:
    shown = masked(
        {
            "jane@example.org": {"note": "call 4242 4242 4242 4242"},
            "customer_details": {"name": "Jane Doe", "address": {"line1": "1 Main St"}},
            "items": [{"first_name": "Jane", "quantity": 1}],
            "name": None,
        }
    )

    assert shown == {
        "j***@e***.org": {"note": "call [card]"},
        "customer_details": {"name": "[redacted]", "address": "[redacted]"},
        "items": [{"first_name": "[redacted]", "quantity": 1}],
        "name": None,
    }


@pytest.mark.parametrize(("zone", "hours"), [("", 0), ("Asia/Tokyo", 9)])
def test_the_last_days_start_is_shown_in_the_viewers_zone_and_says_so(
    client, staff, processed, zone, hours
) -> None:
    staff.time_zone = zone
    staff.save()
    client.force_login(staff)

    page = client.get(CHANGELIST).content.decode()

    since = client.get(CHANGELIST).context["last_day"]["since"]
    local = (since + timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M")
    assert f"since {local} {zone or 'UTC'})" in page
