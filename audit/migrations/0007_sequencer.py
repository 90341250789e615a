"""The sequencer (audit/sequencer.py): entries are written queued, with no place, and
integrated into the chain later, in batches.

``sequence``, ``position`` and ``entry_hash`` become nullable (None while queued),
``leaf_hash`` holds the digest of a queued entry's contents, ``integrated_at`` when it
was integrated, and a partial index holds the queue. Entries already chained keep
their columns and their hashes (``leaf_hash`` empty: the format before the
sequencer, which audit.chain still verifies); ``integrated_at`` stays empty on them.
The default order is the chain's, queued entries last in the order they were written.

On PostgreSQL the entry trigger lets one more UPDATE through: the integration of a
queued entry, which sets its place and chain hash once and changes nothing else.
"""

from importlib import import_module

from django.db import migrations, models

_0006 = import_module("audit.migrations.0006_purge_segment")
_on_postgresql = _0006._on_postgresql

CHAIN_COLUMNS = "ARRAY['sequence', 'position', 'previous_hash', 'entry_hash', 'integrated_at']"
GENERIC_CHECK = "    IF (to_jsonb(OLD) - 'personal_data'"
INTEGRATION = f"""    IF TG_OP = 'UPDATE' AND OLD.sequence IS NULL AND NEW.sequence IS NOT NULL THEN
        -- The sequencer integrating a queued entry: its place and chain hash are set,
        -- once (a queued entry has none); its contents stay as they were written.
        IF OLD.position IS NOT NULL OR OLD.entry_hash IS NOT NULL
                OR NEW.position IS NULL OR NEW.entry_hash IS NULL OR NEW.integrated_at IS NULL
                OR (to_jsonb(OLD) - {CHAIN_COLUMNS})
                    IS DISTINCT FROM (to_jsonb(NEW) - {CHAIN_COLUMNS}) THEN
            RAISE EXCEPTION 'audit_auditentry is append-only: integration sets an entry''s '
                'place and chain hash, nothing else' USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END IF;
"""
PREVIOUS_ENTRY_TRIGGER = _0006.ENTRY_TRIGGER
if PREVIOUS_ENTRY_TRIGGER.count(GENERIC_CHECK) != 1:
    raise RuntimeError("0006's entry trigger is not the one this migration rewrites")
ENTRY_TRIGGER = PREVIOUS_ENTRY_TRIGGER.replace(GENERIC_CHECK, INTEGRATION + GENERIC_CHECK)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0006_purge_segment"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="auditentry",
            options={
                "ordering": [models.OrderBy(models.F("sequence"), nulls_last=True), "id"],
                "verbose_name_plural": "audit entries",
            },
        ),
        migrations.AddField(
            model_name="auditentry",
            name="integrated_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="auditentry",
            name="leaf_hash",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AlterField(
            model_name="auditentry",
            name="entry_hash",
            field=models.CharField(blank=True, max_length=64, null=True, unique=True),
        ),
        migrations.AlterField(
            model_name="auditentry",
            name="position",
            field=models.PositiveBigIntegerField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="auditentry",
            name="previous_hash",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AlterField(
            model_name="auditentry",
            name="sequence",
            field=models.PositiveBigIntegerField(blank=True, null=True, unique=True),
        ),
        migrations.AddIndex(
            model_name="auditentry",
            index=models.Index(
                condition=models.Q(("sequence__isnull", True)),
                fields=["id"],
                name="audit_queued_idx",
            ),
        ),
        migrations.AddConstraint(
            model_name="auditentry",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(
                        ("entry_hash__isnull", True),
                        ("position__isnull", True),
                        ("sequence__isnull", True),
                    ),
                    models.Q(
                        ("entry_hash__isnull", False),
                        ("position__gte", 1),
                        ("position__isnull", False),
                        ("sequence__gte", 1),
                        ("sequence__isnull", False),
                    ),
                    _connector="OR",
                ),
                name="audit_entry_placed_whole",
            ),
        ),
        migrations.RunPython(_on_postgresql(ENTRY_TRIGGER), _on_postgresql(PREVIOUS_ENTRY_TRIGGER)),
    ]
