"""Streams: one hash chain per retention class, so that security entries (kept 1 year)
can be purged without breaking the chain of transaction entries (kept 7 years).

Every entry written before this migration goes into stream ``transaction`` at
position = sequence: those entries already form one chain (each links to the entry
of the sequence before), so they stay verifiable as they are, and they are kept the
longer period (never shorter than promised). Existing checkpoints likewise become
checkpoints of stream ``transaction`` (their signed text, with the bare origin, is
unchanged and still verifies); each covers the positions after the checkpoint
before it. The ``transaction`` stream's head starts where the global head was; the
``security`` stream starts empty.

On PostgreSQL the append-only triggers are switched off for the numbering (within
this migration's transaction only): the triggers refuse every other UPDATE.
"""

from django.db import migrations, models

TRANSACTION = "transaction"
GENESIS_HASH = "0" * 64


def _number_existing(apps, schema_editor):
    connection = schema_editor.connection
    postgresql = connection.vendor == "postgresql"
    if postgresql:
        schema_editor.execute(
            "ALTER TABLE audit_auditentry DISABLE TRIGGER audit_entry_append_only"
        )
        schema_editor.execute(
            "ALTER TABLE audit_auditcheckpoint DISABLE TRIGGER audit_checkpoint_append_only"
        )
    schema_editor.execute("UPDATE audit_auditentry SET position = sequence")
    checkpoint_model = apps.get_model("audit", "AuditCheckpoint")
    previous = 0
    for checkpoint in checkpoint_model.objects.order_by("created_at", "id"):
        checkpoint_model.objects.filter(pk=checkpoint.pk).update(first_position=previous + 1)
        previous = max(previous, checkpoint.position)
    if postgresql:
        schema_editor.execute("ALTER TABLE audit_auditentry ENABLE TRIGGER audit_entry_append_only")
        schema_editor.execute(
            "ALTER TABLE audit_auditcheckpoint ENABLE TRIGGER audit_checkpoint_append_only"
        )
    head = apps.get_model("audit", "AuditChainHead").objects.filter(pk=1).first()
    apps.get_model("audit", "AuditStreamHead").objects.create(
        stream=TRANSACTION,
        position=head.sequence if head else 0,
        entry_hash=head.entry_hash if head else GENESIS_HASH,
    )


def _unnumber(apps, schema_editor):
    """Back to one chain: only possible while every entry is in the transaction stream."""
    entry_model = apps.get_model("audit", "AuditEntry")
    if entry_model.objects.exclude(stream=TRANSACTION).exists():
        raise RuntimeError("entries of other streams exist: one chain cannot hold them")
    apps.get_model("audit", "AuditStreamHead").objects.all().delete()


STREAM_CHOICES = [
    ("security", "Security (kept 1 year)"),
    ("transaction", "Transaction (kept 7 years)"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0004_auditcheckpoint"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditentry",
            name="stream",
            field=models.CharField(choices=STREAM_CHOICES, default=TRANSACTION, max_length=16),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="auditentry",
            name="position",
            field=models.PositiveBigIntegerField(null=True),
        ),
        migrations.CreateModel(
            name="AuditStreamHead",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "stream",
                    models.CharField(choices=STREAM_CHOICES, max_length=16, unique=True),
                ),
                ("position", models.PositiveBigIntegerField(default=0)),
                ("entry_hash", models.CharField(default=GENESIS_HASH, max_length=64)),
            ],
        ),
        migrations.CreateModel(
            name="AuditVerifiedPoint",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "stream",
                    models.CharField(choices=STREAM_CHOICES, max_length=16, unique=True),
                ),
                ("position", models.PositiveBigIntegerField()),
                ("entry_hash", models.CharField(max_length=64)),
                ("verified_at", models.DateTimeField()),
            ],
        ),
        migrations.RenameField(
            model_name="auditcheckpoint", old_name="sequence", new_name="position"
        ),
        migrations.AddField(
            model_name="auditcheckpoint",
            name="stream",
            field=models.CharField(choices=STREAM_CHOICES, default=TRANSACTION, max_length=16),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="auditcheckpoint",
            name="first_position",
            field=models.PositiveBigIntegerField(default=1),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="auditcheckpoint",
            name="previous_hash",
            field=models.CharField(blank=True, default="", max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(_number_existing, _unnumber),
        migrations.AlterField(
            model_name="auditentry",
            name="position",
            field=models.PositiveBigIntegerField(),
        ),
        migrations.AddConstraint(
            model_name="auditentry",
            constraint=models.UniqueConstraint(
                fields=("stream", "position"), name="audit_entry_unique_stream_position"
            ),
        ),
        migrations.AddIndex(
            model_name="auditentry",
            index=models.Index(
                condition=models.Q(
                    ("personal_data__isnull", True),
                    models.Q(("personal_data_digest", ""), _negated=True),
                ),
                fields=["sequence"],
                name="audit_redacted_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="auditcheckpoint",
            index=models.Index(fields=["stream", "position"], name="audit_checkpoint_pos_idx"),
        ),
    ]
