"""The two seed cases for the audit trail: every kind of action leaves an entry naming
who really did it, and every kind of tampering is caught."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.db import DatabaseError, transaction
from django.test import Client

from accounts.models import User
from audit import Category, record
from audit.checkpoints import checkpoints_verify
from audit.models import AuditEntry
from audit.services import redact_personal_data, verify_chain
from audit.tasks import write_checkpoint
from tests.audit.sequenced import integrated
from tests.audit.tamper import execute, rewrite_and_rehash, trigger_disabled
from tests.bookings.world import World, world
from tests.conftest import PASSWORD, step_up
from webhooks.models import WebhookEvent

__all__ = ["world"]


def _operator() -> User:
    """A staff member holding exactly what the audit and inbox pages need."""
    user = User.objects.create_user(
        email="operator@slotpay.example", password=PASSWORD, name="Otto Operator", is_staff=True
    )
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=[
                "view_auditentry",
                "view_auditcheckpoint",
                "view_webhookevent",
                "replay_webhookevent",
            ]
        )
    )
    return user


def _who(action: str) -> set[tuple[str, str]]:
    return set(AuditEntry.objects.filter(action=action).values_list("actor_type", "actor_id"))


@pytest.mark.django_db(transaction=True)
def test_comprehensive_action_logging(world: World) -> None:
    # System actions: a client books and pays; both providers' webhooks do the rest.
    slot = world.book(come_back=False)
    world.deliver("invitee.created")
    world.pay(slot)
    world.deliver()
    world.retry_waiting()
    assert slot.booking.status == "confirmed"
    forged = Client().post(
        world.site.endpoint("stripe").removeprefix(world.site.url),
        data=json.dumps({"id": "evt_forged", "type": "checkout.session.completed"}),
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE="t=1,v1=forged",
    )
    assert forged.status_code >= 400
    assert write_checkpoint.apply().get(disable_sync_subtasks=False)["ok"]

    # Staff actions, each through the back-office as staff do them.
    operator = _operator()
    staff = Client()
    staff.force_login(operator)
    step_up(staff)
    paid_event = WebhookEvent.objects.get(event_type="checkout.session.completed")
    WebhookEvent.objects.filter(pk=paid_event.pk).update(status=WebhookEvent.Status.DEAD)
    replayed = staff.post(
        "/admin/webhooks/webhookevent/",
        {"action": "replay_selected", "_selected_action": [paid_event.pk]},
    )
    assert replayed.status_code == 302
    assert b"The chain verifies" in staff.post("/admin/audit/auditentry/verify/").content
    assert staff.post("/admin/audit/auditcheckpoint/export/").status_code == 200
    call_command("audit_checkpoint", "write")
    consent = AuditEntry.objects.get(action="bookings.consent.given")
    redact_personal_data(entries=[consent], actor=operator, reason="erasure request DSR-1")

    client, builder = world.client_user, world.builder_user
    me = ("user", str(operator.pk))
    expected = {
        # the people
        "bookings.consent.given": {("user", str(client.pk))},
        "webhooks.event.replayed": {me},
        "audit.chain.verified": {me},
        "audit.checkpoints.exported": {me},
        "audit.personal_data.redacted": {me},
        # the system, by component
        "accounts.user.created": {("system", "accounts")},
        "webhooks.event.accepted": {("system", "webhooks.calendly"), ("system", "webhooks.stripe")},
        "webhooks.delivery.rejected": {("system", "webhooks.stripe")},
        "bookings.booking.recorded": {("system", "bookings")},
        "payments.checkout.started": {("system", "payments.checkout")},
        "payments.payment.paid": {("system", "payments.checkout")},
        "bookings.booking.confirmed": {("system", "payments.checkout")},
        "webhooks.event.processed": {
            ("system", "webhooks.calendly"),
            ("system", "webhooks.stripe"),
        },
        "audit.checkpoint.written": {
            ("system", "audit.tasks.write_checkpoint"),
            ("system", f"cli:{getpass.getuser()}"),
        },
    }
    assert {action: _who(action) for action in expected} == expected
    assert builder.pk != operator.pk  # the actor is the operator, not anyone else staff
    replay = AuditEntry.objects.get(action="webhooks.event.replayed")
    assert replay.target_id == str(paid_event.pk)
    assert replay.data["reason"] == "replayed from the admin inbox"
    redaction = AuditEntry.objects.get(action="audit.personal_data.redacted")
    assert redaction.data["reason"] == "erasure request DSR-1"
    assert verify_chain().ok


class _UndoError(Exception):
    pass


@contextmanager
def tampering() -> Iterator[None]:
    """Tamper, check, then roll the tampering back (the trigger switch included)."""
    try:
        with transaction.atomic():
            yield
            raise _UndoError
    except _UndoError:
        pass


def _refused(sql: str, params: list[object]) -> None:
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        execute(sql, params)


def _caught(sequence: int, reason: str) -> None:
    report = verify_chain()
    assert (report.broken_at.sequence if report.broken_at else None, report.ok) == (sequence, False)
    assert reason in report.reason
    with pytest.raises(CommandError, match=f"sequence={sequence} .*{reason}"):
        call_command("audit_verify", "--full")


@pytest.mark.postgres
@pytest.mark.django_db
def test_log_integrity(staff: User, tmp_path: Path) -> None:
    entries = integrated(
        *(
            record(
                "payments.payment.paid",
                category=Category.TRANSACTION,
                actor="payments.checkout",
                target=("payments.payment", number),
                data={"amount": 8000},
                personal_data={"email": f"client{number}@example.org"},
            )
            for number in range(1, 6)
        )
    )
    middle = entries[2]
    call_command("audit_checkpoint", "write")
    exported = tmp_path / "checkpoints.jsonl"
    call_command("audit_checkpoint", "export", "--output", str(exported))
    assert verify_chain().ok

    # Whoever only has the application's rights is stopped by the table itself.
    _refused("UPDATE audit_auditentry SET data = '{}' WHERE id = %s", [middle.pk])
    _refused("DELETE FROM audit_auditentry WHERE id = %s", [middle.pk])
    _refused("UPDATE audit_auditentry SET personal_data = NULL WHERE id = %s", [middle.pk])
    _refused("DELETE FROM audit_auditcheckpoint", [])

    # Whoever can switch the trigger off is caught by verification.
    with tampering():  # 1. an edited row
        with trigger_disabled():
            execute("UPDATE audit_auditentry SET data = '{}' WHERE id = %s", [middle.pk])
        _caught(middle.sequence, "entry_hash does not match")
    with tampering():  # 2. a deleted row
        with trigger_disabled():
            execute("DELETE FROM audit_auditentry WHERE id = %s", [middle.pk])
        _caught(middle.sequence + 1, f"position {middle.position} of the transaction stream")
    with tampering():  # 3. a redaction nobody recorded (the trigger lets a stamped one by)
        execute(
            "UPDATE audit_auditentry SET personal_data = NULL, "
            "personal_data_redacted_at = now() WHERE id = %s",
            [middle.pk],
        )
        _caught(middle.sequence, "a redaction nobody recorded")
    with tampering():  # 4. a rewritten, rehashed chain: the stored checkpoint catches it
        rewrite_and_rehash(middle.sequence)
        report = verify_chain()
        assert "is not the one transaction checkpoint at 5" in report.reason
        # ...and with the stored checkpoints gone too, the exported one does.
        with trigger_disabled("audit_auditcheckpoint"):
            execute("DELETE FROM audit_auditcheckpoint", [])
        assert verify_chain().ok
        checks = checkpoints_verify(exported.read_text().splitlines())
        (check,) = [check for check in checks if check.stream == "transaction"]
        assert "does not have the hash this checkpoint signed" in check.reason
        with pytest.raises(CommandError, match="checkpoints do not hold"):
            call_command("audit_verify", "--full", "--checkpoints", str(exported))

    # Untouched (every tampering rolled back), and a recorded redaction is no tampering.
    redact_personal_data(entries=[middle], actor=staff, reason="erasure request DSR-2")
    assert verify_chain().ok
    call_command("audit_verify", "--full", "--checkpoints", str(exported))
