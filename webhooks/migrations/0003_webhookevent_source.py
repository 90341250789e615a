from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0002_webhookevent_enqueued_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookevent",
            name="source",
            field=models.CharField(
                choices=[
                    ("delivery", "Delivered by the provider"),
                    ("reconciliation", "Found by reconciliation"),
                ],
                default="delivery",
                max_length=16,
            ),
        ),
    ]
