"""Privacy no longer edits people's pages: it reads clients in clear (each view
audited) and corrects them through a rectification request, which asks for a reason.
Editing the page directly let Privacy deactivate a client or change a builder's name
with no reason recorded."""

from django.db import migrations


def remove_change_user(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    privacy = Group.objects.filter(name="Privacy").first()
    change_user = Permission.objects.filter(
        content_type__app_label="accounts", codename="change_user"
    ).first()
    if privacy is not None and change_user is not None:
        privacy.permissions.remove(change_user)


def restore_change_user(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    privacy = Group.objects.filter(name="Privacy").first()
    change_user = Permission.objects.filter(
        content_type__app_label="accounts", codename="change_user"
    ).first()
    if privacy is not None and change_user is not None:
        privacy.permissions.add(change_user)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0006_staff_group_permissions")]

    operations = [migrations.RunPython(remove_change_user, restore_change_user)]
