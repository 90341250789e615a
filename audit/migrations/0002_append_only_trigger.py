"""On PostgreSQL, refuse DELETE on audit entries and any UPDATE except to the
personal-data part (re-encryption by key rotation, or redaction to NULL).

TRUNCATE is not covered (row triggers do not fire on it; the test runner relies on
it): the chain head still records how many entries there were, so audit_verify
reports a truncated table.
"""

from django.db import migrations

MUTABLE = "'personal_data' - 'personal_data_redacted_at'"

CREATE = f"""
CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit_auditentry is append-only: DELETE refused'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (to_jsonb(OLD) - {MUTABLE}) IS DISTINCT FROM (to_jsonb(NEW) - {MUTABLE}) THEN
        RAISE EXCEPTION 'audit_auditentry is append-only: only personal_data may change'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER audit_entry_append_only
    BEFORE UPDATE OR DELETE ON audit_auditentry
    FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_auditentry;
DROP FUNCTION IF EXISTS audit_entry_append_only();
"""


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP))]
