"""Auditors sign off the quarterly access review (accounts/access_review.py): the
permission ``accounts.review_access``, which belongs to no model's Meta (it is a job,
not a table's), is created here and given to the Auditor group."""

from django.db import migrations

CODENAME = "review_access"
NAME = "Can review staff access and sign the review off"


def add_review_access(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    content_type, _ = ContentType.objects.get_or_create(app_label="accounts", model="user")
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type, codename=CODENAME, defaults={"name": NAME}
    )
    auditor = Group.objects.filter(name="Auditor").first()
    if auditor is not None:
        auditor.permissions.add(permission)


def remove_review_access(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Permission.objects.filter(content_type__app_label="accounts", codename=CODENAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0007_privacy_corrects_through_requests"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(add_review_access, remove_review_access)]
