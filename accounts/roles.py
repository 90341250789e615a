"""The staff roles: each group and exactly the permissions its job needs.

accounts/migrations/0006 to 0009 and 0012 give the groups these sets (frozen copies, as
migrations keep theirs); ``ensure_staff_groups`` recreates a group that is missing (a fresh
database, or one a test flushed) with its set. A group that exists is left alone:
changing a group's permissions is a superuser's decision, stepped up and audited.
tests/accounts/test_staff_groups.py states each set.
"""

from __future__ import annotations

from typing import Any

from django.db import router

STAFF_GROUP_PERMISSIONS: dict[str, tuple[str, ...]] = {
    # Helps clients: reads bookings, payments, refunds and people, masked; may reveal a
    # person's data with a reason (audited).
    "Support": (
        "accounts.view_user",
        "accounts.view_builder",
        "accounts.view_buildermembership",
        "accounts.reveal_personal_data",
        "bookings.view_booking",
        "bookings.view_eventtype",
        "payments.view_payment",
        "payments.view_refund",
        "payments.view_dispute",
        "bookings.view_drift",
        # Issue 13: a booking made straight on Calendly sent to a client. Not inviting a
        # builder's members: a member sees clients' data and refunds in full, and staff
        # could invite themselves; superusers and the builder's owners invite.
        "bookings.send_claim",
    ),
    # Moves money: refunds, approves another member's refund, cancels for the client.
    "Finance": (
        "accounts.view_builder",
        "bookings.view_booking",
        "bookings.cancel_for_client",
        "payments.view_payment",
        "payments.view_refund",
        "payments.view_refundapproval",
        "payments.issue_refund",
        "payments.approve_refund",
        "payments.view_dispute",
        "bookings.view_drift",
        "core.view_alert",
    ),
    # Answers data-subject requests: clients' data in clear (each view audited),
    # corrections (through a rectification request, with a reason), erasures.
    "Privacy": (
        "accounts.view_user",
        "accounts.view_personal_data",
        "accounts.view_datasubjectrequest",
        "accounts.add_datasubjectrequest",
        "accounts.change_datasubjectrequest",
        "accounts.carry_out_erasure",
        "bookings.view_booking",
        "core.view_alert",
    ),
    # Reads the audit trail, its checkpoints and the webhook inbox; changes nothing but
    # signs off the quarterly access review (accounts/access_review.py).
    "Auditor": (
        "audit.view_auditentry",
        "audit.view_auditcheckpoint",
        "audit.view_securityeventcount",
        "webhooks.view_webhookevent",
        "core.view_alert",
        "accounts.review_access",
    ),
}

# Permissions that are a job rather than a table's: no model's Meta declares them, so
# Django's post_migrate does not create them. 0008 first made this one; after a flush
# (a transactional test) ``ensure_staff_groups`` makes it again, on the model named.
ROLE_PERMISSIONS: dict[str, tuple[str, str]] = {
    "accounts.review_access": ("user", "Can review staff access and sign the review off"),
}


def ensure_staff_groups(**kwargs: Any) -> None:
    """post_migrate: create any missing staff group with its permissions."""
    from django.apps import apps
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Group, Permission

    using = kwargs.get("using", "default")
    if not router.allow_migrate_model(using, Group):
        return  # another database (the development sandbox's) has no auth tables
    ensure_role_permissions(using=using)
    missing = set(STAFF_GROUP_PERMISSIONS) - set(
        Group.objects.using(using)
        .filter(name__in=STAFF_GROUP_PERMISSIONS)
        .values_list("name", flat=True)
    )
    if not missing:
        return
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=using)
    through = Group.permissions.through
    for name in sorted(missing):
        group = Group.objects.using(using).create(name=name)
        wanted = [label.split(".") for label in STAFF_GROUP_PERMISSIONS[name]]
        # As the migrations that first gave them: a missing group is the install's,
        # not a person's change of rights (bulk_create sends no m2m_changed to audit).
        through.objects.using(using).bulk_create(
            through(
                group_id=group.pk,
                permission_id=Permission.objects.using(using)
                .get(content_type__app_label=app, codename=codename)
                .pk,
            )
            for app, codename in wanted
        )


def ensure_role_permissions(*, using: str = "default") -> None:
    """Create any permission of ROLE_PERMISSIONS that is missing."""
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType

    for label, (model, name) in ROLE_PERMISSIONS.items():
        app_label, codename = label.split(".")
        content_type, _ = ContentType.objects.db_manager(using).get_or_create(
            app_label=app_label, model=model
        )
        Permission.objects.using(using).get_or_create(
            content_type=content_type, codename=codename, defaults={"name": name}
        )
