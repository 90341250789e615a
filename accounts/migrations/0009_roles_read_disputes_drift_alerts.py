"""Issue 12's back-office pages, each to the group whose job it is: Finance and Support
read disputes (payments 0006) and reconciliation drift (bookings 0006); the alerts
(core 0002) are read by Auditors and by the groups alerts are mailed to when no
ALERT_EMAILS are set (Finance, and Privacy for retention), so the email's link opens.
Permissions of new models exist only after post_migrate, so they are created here
first, as 0006 does."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTS = {
    "Finance": ("payments.view_dispute", "bookings.view_drift", "core.view_alert"),
    "Support": ("payments.view_dispute", "bookings.view_drift"),
    "Privacy": ("core.view_alert",),
    "Auditor": ("core.view_alert",),
}


def _permission(apps, label):
    app_label, codename = label.split(".")
    Permission = apps.get_model("auth", "Permission")
    return Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()


def grant(apps, schema_editor):
    for app_label in ("payments", "bookings", "core"):
        app_config = apps.get_app_config(app_label)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    for name, labels in GRANTS.items():
        group = Group.objects.filter(name=name).first()
        if group is not None:
            group.permissions.add(*[_permission(apps, label) for label in labels])


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name, labels in GRANTS.items():
        group = Group.objects.filter(name=name).first()
        permissions = [_permission(apps, label) for label in labels]
        if group is not None:
            group.permissions.remove(*[p for p in permissions if p is not None])


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0008_access_review_permission"),
        ("payments", "0006_dispute"),
        ("bookings", "0006_drift"),
        ("core", "0002_alert"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
