"""Outbox rows are done when their task has run, and only the message of a row's
current publish runs it (core/outbox.py). Rows sent before this release have no
publish id and are left as they were (sent): the relay never sends them again.

The indexes are built without blocking writes (every booking, email and refund
writes this table), so the migration is not atomic."""

from django.db import migrations, models

from core.operations import AddIndexConcurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("core", "0002_alert")]

    operations = [
        migrations.AddField(
            model_name="outboxmessage",
            name="done_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="outboxmessage",
            name="publish_id",
            field=models.CharField(blank=True, default="", max_length=32),
        ),
        AddIndexConcurrently(
            model_name="outboxmessage",
            index=models.Index(
                condition=models.Q(("done_at__isnull", True)),
                fields=["sent_at"],
                name="core_outbox_in_flight_idx",
            ),
        ),
        AddIndexConcurrently(
            model_name="outboxmessage",
            index=models.Index(fields=["done_at"], name="core_outbox_done_idx"),
        ),
    ]
