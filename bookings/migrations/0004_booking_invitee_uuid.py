"""Key bookings by the Calendly invitee's UUID instead of the URI string received.

Calendly names one invitee by URIs on different hosts, with and without ``/api/v2/``;
the URI stays, for reference, and is no longer unique.
"""

import re

from django.db import migrations, models

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def invitee_uuid(uri: str) -> str:
    # A frozen copy of bookings.calendly.uuid_from_uri(uri, "invitees").
    segments = [s for s in uri.split("?", maxsplit=1)[0].split("/") if s]
    found = [
        segments[i + 1]
        for i, segment in enumerate(segments[:-1])
        if segment == "invitees" and _ID.match(segments[i + 1])
    ]
    return found[-1] if found else uri[-64:]


def fill_uuids(apps, schema_editor):
    Booking = apps.get_model("bookings", "Booking")
    for booking in Booking.objects.only("pk", "calendly_invitee_uri").iterator():
        Booking.objects.filter(pk=booking.pk).update(
            calendly_invitee_uuid=invitee_uuid(booking.calendly_invitee_uri)
        )


class Migration(migrations.Migration):
    dependencies = [("bookings", "0003_booking_cancel_request")]

    operations = [
        migrations.AddField(
            model_name="booking",
            name="calendly_invitee_uuid",
            field=models.CharField(max_length=64, null=True),
        ),
        migrations.RunPython(fill_uuids, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="booking",
            name="calendly_invitee_uuid",
            field=models.CharField(max_length=64, unique=True),
        ),
        migrations.AlterField(
            model_name="booking",
            name="calendly_invitee_uri",
            field=models.CharField(max_length=255),
        ),
    ]
