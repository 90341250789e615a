"""Each staff group gets exactly the permissions its job needs (and loses any other).

Support helps clients: reads bookings, payments, refunds and people, masked, and may
reveal a person's data with a reason (audited). Finance moves money: refunds, approves
another member's refund, cancels a booking for the client. Privacy answers
data-subject requests: sees clients' data in clear (each view audited), corrects it,
carries out erasures. Auditor reads the audit trail, its checkpoints and the webhook
inbox, and changes nothing. Rights themselves (users' groups, staff and superuser
status, groups' permissions) are a superuser's alone, whatever a group holds
(accounts/rights.py). tests/accounts/test_staff_groups.py states each set.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

STAFF_GROUP_PERMISSIONS = {
    "Support": [
        "accounts.view_user",
        "accounts.view_builder",
        "accounts.view_buildermembership",
        "accounts.reveal_personal_data",
        "bookings.view_booking",
        "bookings.view_eventtype",
        "payments.view_payment",
        "payments.view_refund",
    ],
    "Finance": [
        "accounts.view_builder",
        "bookings.view_booking",
        "bookings.cancel_for_client",
        "payments.view_payment",
        "payments.view_refund",
        "payments.view_refundapproval",
        "payments.issue_refund",
        "payments.approve_refund",
    ],
    "Privacy": [
        "accounts.view_user",
        "accounts.change_user",
        "accounts.view_personal_data",
        "accounts.view_datasubjectrequest",
        "accounts.add_datasubjectrequest",
        "accounts.change_datasubjectrequest",
        "accounts.carry_out_erasure",
        "bookings.view_booking",
    ],
    "Auditor": [
        "audit.view_auditentry",
        "audit.view_auditcheckpoint",
        "audit.view_securityeventcount",
        "webhooks.view_webhookevent",
    ],
}


def set_permissions(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, dotted in STAFF_GROUP_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = []
        for label in dotted:
            app_label, codename = label.split(".")
            wanted.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.set(wanted)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_datasubjectrequest"),
        ("audit", "0004_auditcheckpoint"),
        ("bookings", "0005_cancel_for_client"),
        ("payments", "0005_refundapproval"),
        ("webhooks", "0002_webhookevent_enqueued_at"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(set_permissions, migrations.RunPython.noop)]
