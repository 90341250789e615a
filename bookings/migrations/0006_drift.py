import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0005_cancel_for_client"),
        ("payments", "0005_refundapproval"),
    ]

    operations = [
        migrations.CreateModel(
            name="Drift",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("paid_no_booking", "Paid with no booking"),
                            ("paid_not_recorded", "Paid in Stripe, not recorded as paid"),
                            ("confirmed_no_payment", "Confirmed with no payment"),
                            ("refunded_but_active", "Refunded in Stripe, booking active"),
                            ("refund_not_recorded", "Refund in Stripe, not recorded"),
                            ("canceled_but_charged", "Canceled in Calendly, still charged"),
                            ("amount_mismatch", "Amount mismatch"),
                        ],
                        max_length=30,
                    ),
                ),
                ("key", models.CharField(max_length=255, unique=True)),
                ("provider_ids", models.JSONField(blank=True, default=dict)),
                ("amount_expected", models.BigIntegerField(blank=True, null=True)),
                ("amount_actual", models.BigIntegerField(blank=True, null=True)),
                ("currency", models.CharField(blank=True, max_length=3)),
                ("detail", models.CharField(blank=True, max_length=300)),
                ("window_at", models.DateTimeField()),
                ("first_seen_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("last_seen_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("resolved_at", models.DateTimeField(blank=True, null=True)),
                (
                    "booking",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="drift",
                        to="bookings.booking",
                    ),
                ),
                (
                    "payment",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="payments.payment",
                    ),
                ),
            ],
            options={
                "verbose_name": "reconciliation drift",
                "verbose_name_plural": "reconciliation drift",
                "ordering": ["-last_seen_at", "kind"],
                "indexes": [
                    models.Index(fields=["resolved_at", "kind"], name="bookings_drift_open_idx"),
                    models.Index(fields=["window_at"], name="bookings_drift_window_idx"),
                ],
            },
        ),
    ]
