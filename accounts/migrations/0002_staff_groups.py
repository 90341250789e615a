"""Staff groups and their model permissions.

Later apps add their permissions to these groups in their own data migrations
(bookings: Support reads bookings; payments: Finance refunds; ...).
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

STAFF_GROUPS = {
    # Reads accounts to help clients; booking views (masked) arrive with bookings.
    "Support": ["accounts.view_user", "accounts.view_builder", "accounts.view_buildermembership"],
    # Issues refunds once payments exist; sees which builder a payment belongs to.
    "Finance": ["accounts.view_builder"],
    # Answers data-subject requests: finds and corrects a person's account.
    "Privacy": ["accounts.view_user", "accounts.change_user"],
    # Reads the audit log, nothing else.
    "Auditor": ["audit.view_auditentry"],
}


def create_groups(apps, schema_editor):
    # Permissions are normally created after all migrations; make sure they exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in STAFF_GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for dotted in perms:
            app_label, codename = dotted.split(".")
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=STAFF_GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("audit", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
