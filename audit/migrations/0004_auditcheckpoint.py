"""Signed checkpoints of the chain, append-only like the entries; and a stricter
entry trigger: personal data may be re-encrypted (key rotation) or redacted, but a
redaction must stamp ``personal_data_redacted_at``, the stamp never moves once set,
and redacted data never comes back."""

from importlib import import_module

from django.db import migrations, models

_0002 = import_module("audit.migrations.0002_append_only_trigger")
_on_postgresql = _0002._on_postgresql

# The function 0002 installed (without its CREATE TRIGGER), for the way back; the new
# one adds the redaction rules before its RETURN.
PREVIOUS_ENTRY_TRIGGER = _0002.CREATE.split("CREATE TRIGGER")[0]
REDACTION_RULES = """    IF OLD.personal_data IS NOT NULL AND NEW.personal_data IS NULL
            AND NEW.personal_data_redacted_at IS NULL THEN
        RAISE EXCEPTION 'audit_auditentry is append-only: a redaction must set '
            'personal_data_redacted_at' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF OLD.personal_data IS NULL AND NEW.personal_data IS NOT NULL THEN
        RAISE EXCEPTION 'audit_auditentry is append-only: personal_data cannot come back'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.personal_data_redacted_at IS DISTINCT FROM OLD.personal_data_redacted_at
            AND (OLD.personal_data_redacted_at IS NOT NULL OR NEW.personal_data IS NOT NULL) THEN
        RAISE EXCEPTION 'audit_auditentry is append-only: personal_data_redacted_at is set '
            'once, by a redaction' USING ERRCODE = 'insufficient_privilege';
    END IF;
"""
ENTRY_TRIGGER = PREVIOUS_ENTRY_TRIGGER.replace(
    "    RETURN NEW;", f"{REDACTION_RULES}    RETURN NEW;"
)

CHECKPOINT_TRIGGER = """
CREATE OR REPLACE FUNCTION audit_checkpoint_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        MESSAGE = 'audit_auditcheckpoint is append-only: ' || TG_OP || ' refused',
        ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_checkpoint_append_only
    BEFORE UPDATE OR DELETE ON audit_auditcheckpoint
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoint_append_only();
"""

DROP_CHECKPOINT_TRIGGER = """
DROP TRIGGER IF EXISTS audit_checkpoint_append_only ON audit_auditcheckpoint;
DROP FUNCTION IF EXISTS audit_checkpoint_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0003_security_event_count"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditCheckpoint",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("sequence", models.PositiveBigIntegerField()),
                ("entry_hash", models.CharField(max_length=64)),
                ("entry_count", models.PositiveBigIntegerField()),
                ("created_at", models.DateTimeField()),
                ("body", models.TextField()),
                ("signature", models.CharField(max_length=100)),
                ("public_key", models.CharField(max_length=64)),
                ("key_id", models.CharField(max_length=8)),
            ],
            options={
                "ordering": ["-created_at", "-id"],
                "get_latest_by": ["created_at", "id"],
            },
        ),
        migrations.RunPython(
            _on_postgresql(CHECKPOINT_TRIGGER), _on_postgresql(DROP_CHECKPOINT_TRIGGER)
        ),
        migrations.RunPython(_on_postgresql(ENTRY_TRIGGER), _on_postgresql(PREVIOUS_ENTRY_TRIGGER)),
    ]
