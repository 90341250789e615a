"""The seed's "log retention enforcement" case, end to end.

Logs past their retention go and fresh or held ones stay: security audit entries (a
year after the checkpoint that sealed their segment; the chain still verifies from
the surviving checkpoint), webhook payloads (24 hours after processing) and django-axes
records (90 days). The rules are tested one by one in tests/retention/.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import override_settings

import audit
from accounts.dsr import dsr_file
from accounts.models import User
from audit import purges
from audit.checkpoints import checkpoint_write
from audit.models import AuditEntry, Stream
from tests.retention.conftest import START, clock
from webhooks.models import WebhookEvent

__all__ = ["clock"]

DAY = timedelta(days=1)


def _attempt(number: int, age: timedelta) -> AccessAttempt:
    attempt = AccessAttempt.objects.create(
        user_agent=f"agent {number}",
        ip_address="203.0.113.9",
        username=f"blind-index-{number}",
        http_accept="text/html",
        path_info="/accounts/login/",
        get_data="",
        post_data="",
        failures_since_start=5,
    )
    AccessAttempt.objects.filter(pk=attempt.pk).update(attempt_time=START - age)
    return attempt


def _processed_event(number: int, processed_ago: timedelta) -> WebhookEvent:
    return WebhookEvent.objects.create(
        provider="calendly",
        event_id=f"evt_{number}",
        event_type="invitee.created",
        status=WebhookEvent.Status.PROCESSED,
        received_at=START - processed_ago,
        next_attempt_at=START - processed_ago,
        processed_at=START - processed_ago,
        payload='{"payload": {"name": "Clara Client", "email": "clara@client.example"}}',
    )


@pytest.mark.postgres
@pytest.mark.django_db
@override_settings(WEBHOOK_PAYLOAD_RETENTION_HOURS=24)
def test_log_retention_enforcement(clock) -> None:
    # 400 days ago: a failed sign-in, in a segment sealed then.
    clock.move_to(START - 400 * DAY)
    staff = User.objects.create_superuser(email="dpo@slotpay.example", password="x" * 20)
    expired = audit.record(
        "accounts.login.failed", category=audit.Category.SECURITY, actor=None, data={"n": 1}
    )
    checkpoint_write(actor="test", stream=Stream.SECURITY)
    # 390 days ago: a sign-in of someone who has since asked for their data: held.
    clock.move_to(START - 390 * DAY)
    asker = User.objects.create_user(email="asker@client.example", password="x" * 20)
    held = audit.record(
        "accounts.login.succeeded", category=audit.Category.SECURITY, actor=asker, target=asker
    )
    checkpoint_write(actor="test", stream=Stream.SECURITY)
    clock.move_to(START)
    dsr_file(subject=asker, kind="access", actor=staff)
    fresh = audit.record(
        "accounts.login.failed", category=audit.Category.SECURITY, actor=None, data={"n": 2}
    )
    blanked, kept = _processed_event(1, 25 * timedelta(hours=1)), _processed_event(2, DAY / 24)
    old_attempt, recent_attempt = _attempt(1, 91 * DAY), _attempt(2, 89 * DAY)

    report = {rule.name: forecast for rule, forecast in purges.report()}
    security = report["audit.security_segments"]
    assert security.due >= 1
    assert set(security.held) == {"open data-subject request"}
    assert report["webhooks.payloads"].due == 1
    assert report["accounts.axes"].due == 1
    out = StringIO()
    call_command("retention_report", stdout=out)
    assert "held: open data-subject request: " in out.getvalue()

    done = purges.run()
    assert done["audit.security_segments"] == security.due
    assert done["webhooks.payloads"] == 1
    assert done["accounts.axes"] == 1

    assert not AuditEntry.objects.filter(pk=expired.pk).exists()
    assert AuditEntry.objects.filter(pk__in=[held.pk, fresh.pk]).count() == 2
    blanked.refresh_from_db()
    kept.refresh_from_db()
    assert blanked.payload is None
    assert kept.payload is not None
    assert list(AccessAttempt.objects.all()) == [recent_attempt]
    assert not AccessAttempt.objects.filter(pk=old_attempt.pk).exists()
    # What remains of the chain still verifies, from the surviving checkpoint.
    call_command("audit_verify", stdout=StringIO())
