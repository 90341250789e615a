"""The one way entries leave the audit log: ``audit_purge_segment``, on PostgreSQL.

    SELECT audit_purge_segment(stream, through_position, now, limit)

deletes at most ``limit`` of the oldest entries of ``stream``, at or below
``through_position``, which a stored checkpoint of that stream must name exactly,
and only when that checkpoint was signed longer ago than the stream's retention
(365 days for security, 7 x 365 for transaction: written here, so that no caller can
shorten them) and every entry deleted is older than that too. ``now`` is the
caller's clock (the application's, which the retention report also uses).

The entry trigger lets a DELETE through only when the statement directly above it
on the call stack is that function's (PG_CONTEXT: a setting could be set by anyone,
the call stack cannot), and only for an entry at or below a checkpoint of its
stream. TRUNCATE, which fires no row trigger, is refused on entries and checkpoints
by statement triggers, unless the session sets ``audit.allow_truncate`` to ``on``
on a database named ``test_*`` (the test suite's flush between tests; tests/settings.py
sets it).
"""

from importlib import import_module

from django.db import migrations

_0002 = import_module("audit.migrations.0002_append_only_trigger")
_0004 = import_module("audit.migrations.0004_auditcheckpoint")


def _on_postgresql(sql):
    """0002's runner, but with no parameters: the SQL holds literal % signs."""

    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run


PURGE_SIGNATURE = "audit_purge_segment(text,bigint,timestamp with time zone,integer)"

DELETE_REFUSED = """    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit_auditentry is append-only: DELETE refused'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
"""
DELETE_BY_PURGE_ONLY = """    IF TG_OP = 'DELETE' THEN
        -- Line 1 is this trigger, line 2 the DELETE, line 3 who ran the DELETE.
        GET DIAGNOSTICS caller = PG_CONTEXT;
        IF split_part(caller, E'\\n', 3) NOT LIKE 'PL/pgSQL function audit_purge_segment(text,bigint,'
                'timestamp with time zone,integer) %' THEN
            RAISE EXCEPTION 'audit_auditentry is append-only: DELETE refused (only '
                'audit_purge_segment removes sealed, expired segments)'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF NOT EXISTS (
            SELECT 1 FROM audit_auditcheckpoint
            WHERE stream = OLD.stream AND position >= OLD.position
        ) THEN
            RAISE EXCEPTION 'audit_auditentry is append-only: % entry % is not sealed by '
                'a checkpoint', OLD.stream, OLD.position
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN OLD;
    END IF;
"""
PREVIOUS_ENTRY_TRIGGER = _0004.ENTRY_TRIGGER
if DELETE_REFUSED not in PREVIOUS_ENTRY_TRIGGER:
    raise RuntimeError("0004's entry trigger is not the one this migration rewrites")
ENTRY_TRIGGER = PREVIOUS_ENTRY_TRIGGER.replace(DELETE_REFUSED, DELETE_BY_PURGE_ONLY).replace(
    "LANGUAGE plpgsql AS $$\nBEGIN", "LANGUAGE plpgsql AS $$\nDECLARE\n    caller text;\nBEGIN"
)

PURGE_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_purge_segment(
    p_stream text, p_through_position bigint, p_now timestamptz, p_limit integer
) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_period interval;
    v_cutoff timestamptz;
    v_sealed_at timestamptz;
    v_ids bigint[];
    v_newest timestamptz;
    v_deleted integer;
BEGIN
    v_period := CASE p_stream
        WHEN 'security' THEN interval '365 days'
        WHEN 'transaction' THEN interval '2555 days'
    END;
    IF v_period IS NULL THEN
        RAISE EXCEPTION 'audit_purge_segment: no stream %', p_stream
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_now IS NULL OR p_limit IS NULL OR p_limit < 1 THEN
        RAISE EXCEPTION 'audit_purge_segment: a time and a positive limit are required'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The caller's clock may lag the database's (tests move it back), never lead it: a
    -- time in the future would make an unexpired segment look expired.
    IF p_now > now() + interval '1 minute' THEN
        RAISE EXCEPTION 'audit_purge_segment: % is ahead of the database clock', p_now
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    v_cutoff := p_now - v_period;
    SELECT min(created_at) INTO v_sealed_at FROM audit_auditcheckpoint
        WHERE stream = p_stream AND position = p_through_position;
    IF v_sealed_at IS NULL THEN
        RAISE EXCEPTION 'audit_purge_segment: no checkpoint of % closes at position %',
            p_stream, p_through_position USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF v_sealed_at > v_cutoff THEN
        RAISE EXCEPTION 'audit_purge_segment: the % segment through % is not expired '
            '(sealed %)', p_stream, p_through_position, v_sealed_at
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT array_agg(id), max(created_at) INTO v_ids, v_newest FROM (
        SELECT id, created_at FROM audit_auditentry
        WHERE stream = p_stream AND position <= p_through_position
        ORDER BY position LIMIT p_limit
    ) AS batch;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;
    IF v_newest > v_cutoff THEN
        RAISE EXCEPTION 'audit_purge_segment: an entry of % through % is not expired',
            p_stream, p_through_position USING ERRCODE = 'insufficient_privilege';
    END IF;
    DELETE FROM audit_auditentry WHERE id = ANY(v_ids);
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END;
$$;
"""

DROP_PURGE_FUNCTION = f"DROP FUNCTION IF EXISTS {PURGE_SIGNATURE};"

TRUNCATE_TRIGGERS = """
CREATE OR REPLACE FUNCTION audit_refuse_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- The test suite's flush between tests, on a test database only (pytest-django
    -- names it test_<name>): a production session setting the switch is still refused.
    IF current_setting('audit.allow_truncate', true) = 'on'
            AND left(current_database(), 5) = 'test_' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION USING
        MESSAGE = TG_TABLE_NAME || ' is append-only: TRUNCATE refused',
        ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_entry_no_truncate BEFORE TRUNCATE ON audit_auditentry
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_truncate();
CREATE TRIGGER audit_checkpoint_no_truncate BEFORE TRUNCATE ON audit_auditcheckpoint
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_truncate();
"""

DROP_TRUNCATE_TRIGGERS = """
DROP TRIGGER IF EXISTS audit_entry_no_truncate ON audit_auditentry;
DROP TRIGGER IF EXISTS audit_checkpoint_no_truncate ON audit_auditcheckpoint;
DROP FUNCTION IF EXISTS audit_refuse_truncate();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0005_streams"),
    ]

    operations = [
        migrations.RunPython(_on_postgresql(ENTRY_TRIGGER), _on_postgresql(PREVIOUS_ENTRY_TRIGGER)),
        migrations.RunPython(_on_postgresql(PURGE_FUNCTION), _on_postgresql(DROP_PURGE_FUNCTION)),
        migrations.RunPython(
            _on_postgresql(TRUNCATE_TRIGGERS), _on_postgresql(DROP_TRUNCATE_TRIGGERS)
        ),
    ]
