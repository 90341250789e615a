"""Outbox rows are done when their task has run (core.outbox.task_ran); rows sent
before this migration are taken as done, or every one of them would be sent again."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("core", "0002_alert")]

    operations = [
        migrations.AddField(
            model_name="outboxmessage",
            name="done_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunSQL(
            "UPDATE core_outboxmessage SET done_at = sent_at WHERE sent_at IS NOT NULL",
            migrations.RunSQL.noop,
        ),
        migrations.RemoveIndex(model_name="outboxmessage", name="core_outbox_sent_idx"),
        migrations.AddIndex(
            model_name="outboxmessage",
            index=models.Index(
                condition=models.Q(("done_at__isnull", True)),
                fields=["sent_at"],
                name="core_outbox_in_flight_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="outboxmessage",
            index=models.Index(fields=["done_at"], name="core_outbox_done_idx"),
        ),
    ]
