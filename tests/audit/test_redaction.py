"""A redaction is an erasure someone answers for: done through the service it is
recorded (who, why, which entries); done behind its back it is caught."""

import pytest
from django.core.management import CommandError, call_command

from audit import Category, record
from audit.models import AuditEntry
from audit.services import redact_personal_data, verify_chain
from tests.audit.sequenced import integrated
from tests.audit.tamper import execute

RAW_REDACTION = (
    "UPDATE audit_auditentry SET personal_data = NULL, personal_data_redacted_at = now() "
    "WHERE id = %s"
)


@pytest.fixture
def entries(db) -> list[AuditEntry]:
    return integrated(
        *(
            record(
                "bookings.booking.created",
                category=Category.TRANSACTION,
                actor="bookings",
                target=("bookings.booking", number),
                personal_data={"email": f"client{number}@example.org"},
            )
            for number in range(1, 5)
        )
    )


@pytest.mark.postgres
def test_a_raw_redaction_behind_the_services_back_is_caught(entries):
    # The trigger lets it through (it is stamped), but nobody recorded it.
    execute(RAW_REDACTION, [entries[1].pk])

    report = verify_chain()

    assert not report.ok
    assert report.broken_at.pk == entries[1].pk
    assert "no later audit.personal_data.redacted entry lists it" in report.reason
    with pytest.raises(CommandError) as raised:
        call_command("audit_verify", "--full")
    assert f"entry id={entries[1].pk} sequence=2" in str(raised.value)
    assert "a redaction nobody recorded" in str(raised.value)


def test_a_redaction_through_the_service_verifies_and_names_who_and_why(entries, staff, capsys):
    redact_personal_data(entries=[entries[2]], actor=staff, reason="erasure request DSR-9")

    assert verify_chain().ok
    call_command("audit_verify", "--full")
    verified = f"Audit chain verified: {AuditEntry.objects.count()} entries."
    assert verified in capsys.readouterr().out
    redaction = AuditEntry.objects.get(action="audit.personal_data.redacted")
    assert (redaction.actor_type, redaction.actor_id) == ("user", str(staff.pk))
    assert redaction.data["reason"] == "erasure request DSR-9"
    assert redaction.data["sequences"] == [entries[2].sequence]


@pytest.mark.postgres
def test_a_raw_redaction_beside_a_recorded_one_is_still_caught(entries, staff):
    redact_personal_data(entries=[entries[0]], actor=staff, reason="erasure request DSR-9")
    execute(RAW_REDACTION, [entries[3].pk])

    report = verify_chain()

    assert report.broken_at.pk == entries[3].pk
    assert "a redaction nobody recorded" in report.reason


@pytest.mark.postgres
def test_a_redaction_entry_cannot_vouch_for_a_later_one(entries, staff):
    # An entry written before the redaction happened cannot record it: the listed
    # sequence must come before the redaction entry.
    [later] = integrated(
        record(
            "bookings.booking.created",
            category=Category.TRANSACTION,
            actor="bookings",
            personal_data={"email": "late@example.org"},
        )
    )
    record(
        "audit.personal_data.redacted",
        category=Category.DATA,
        actor=staff,
        data={"entries": 1, "sequences": [later.sequence + 1], "reason": "forged ahead"},
    )
    victim = record(
        "bookings.booking.created",
        category=Category.TRANSACTION,
        actor="bookings",
        personal_data={"email": "victim@example.org"},
    )
    execute(RAW_REDACTION, [victim.pk])

    assert verify_chain().broken_at.pk == victim.pk


@pytest.mark.parametrize(("actor", "reason"), [(None, "erasure"), ("privacy", " ")])
def test_a_redaction_needs_an_actor_and_a_reason(entries, actor, reason):
    with pytest.raises(ValueError, match="who did it and why"):
        redact_personal_data(entries=entries[:1], actor=actor, reason=reason)

    assert AuditEntry.objects.get(pk=entries[0].pk).personal_data is not None
