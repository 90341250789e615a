"""Record full verifications of the field encryption."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_user_time_zone"),
    ]

    operations = [
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
