import uuid

from django.db import migrations, models


def give_references(apps, schema_editor):
    booking = apps.get_model("bookings", "Booking")
    for row in booking.objects.filter(reference__isnull=True).only("pk"):
        booking.objects.filter(pk=row.pk).update(reference=uuid.uuid4())


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="booking",
            name="currency",
            field=models.CharField(default="", max_length=3),
        ),
        migrations.AddField(
            model_name="booking",
            name="price_amount",
            field=models.PositiveBigIntegerField(default=0),
        ),
        # Unique values for rows that exist already, then the constraint.
        migrations.AddField(
            model_name="booking",
            name="reference",
            field=models.UUIDField(null=True, editable=False),
        ),
        migrations.RunPython(give_references, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="booking",
            name="reference",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
        migrations.AddField(
            model_name="booking",
            name="review_reason",
            field=models.CharField(blank=True, max_length=200),
        ),
    ]
