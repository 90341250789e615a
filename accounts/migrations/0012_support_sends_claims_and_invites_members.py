"""Issue 13's back-office job, to Support: send a booking made straight on Calendly to an
existing client (bookings 0008's ``send_claim``; audited). Created first, as 0009 does,
since new permissions exist only after post_migrate.

Inviting a builder's members is not Support's: a member sees the builder's clients and
refunds in full, and staff could invite themselves. Superusers and the builder's owners
invite (accounts.signup.may_invite)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTS = {
    "Support": ("bookings.send_claim",),
}


def _permission(apps, label):
    app_label, codename = label.split(".")
    Permission = apps.get_model("auth", "Permission")
    return Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()


def grant(apps, schema_editor):
    for app_label in ("bookings", "accounts"):
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
        ("accounts", "0011_onetimelink_invite_builder_member"),
        ("bookings", "0008_booking_builder_cancel_and_calendly_links"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
