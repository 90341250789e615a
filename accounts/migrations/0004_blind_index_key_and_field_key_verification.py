"""Record which BLIND_INDEX_KEY each email index was computed with, and full
verifications of the field encryption."""

import hashlib

import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def label_existing_indexes(apps, schema_editor):
    # Until now BLIND_INDEX_KEY held one key, so it computed every stored index.
    key = next((key.strip() for key in settings.BLIND_INDEX_KEY.split(",") if key.strip()), "")
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:12]
    User = apps.get_model("accounts", "User")
    User.objects.using(schema_editor.connection.alias).update(email_index_key=fingerprint)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_user_time_zone"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="email_index_key",
            field=models.CharField(
                db_index=True,
                default="",
                editable=False,
                help_text="Fingerprint of the index's key.",
                max_length=32,
            ),
            preserve_default=False,
        ),
        migrations.RunPython(label_existing_indexes, migrations.RunPython.noop),
        migrations.CreateModel(
            name="FieldKeyVerification",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "key_fingerprint",
                    models.CharField(help_text="The first key at the time.", max_length=32),
                ),
                ("started_at", models.DateTimeField()),
                ("finished_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("rows", models.BigIntegerField()),
                (
                    "older_key_values",
                    models.BigIntegerField(help_text="Decrypt with an older key only."),
                ),
                ("undecryptable_values", models.BigIntegerField(help_text="Decrypt with no key.")),
            ],
            options={
                "get_latest_by": "started_at",
            },
        ),
    ]
