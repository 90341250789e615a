"""The quarterly access review: who holds which rights in the back-office, and whether
they still should.

Every staff member (``is_staff``, a superuser, or a member of a staff group, since a
group grants permissions whatever ``is_staff`` says) is listed with their groups,
their effective permissions, superuser status, TOTP enrolment and last sign-in, and
flagged when:

- **inactive**: an active account with no sign-in for ACCESS_REVIEW_INACTIVE_DAYS,
  or never signed in at all;
- **over-privileged**: a superuser; permissions given directly to the person; a group
  that is not one of the staff roles (accounts/roles.py); two or more staff roles; or
  any effective permission beyond what their roles' stated sets hold (a role's group
  that a superuser widened counts too).

Superusers and holders of ``accounts.review_access`` (the Auditor role) see the review
and sign it off, stepped up, with a note. The sign-off is the audit entry
``accounts.access_review.signed_off``: no table of its own, the trail is the record
(security entries are kept a year, four reviews' worth). The next review is due
ACCESS_REVIEW_INTERVAL_DAYS after the last sign-off; ``accounts.tasks`` raises the
alert ``accounts.access_review.due`` for the Auditor group when it is, and a sign-off
clears it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Prefetch, Q
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

import audit
from accounts.models import User
from accounts.roles import STAFF_GROUP_PERMISSIONS
from audit.models import AuditEntry
from core import alerts

SIGNED_OFF = "accounts.access_review.signed_off"
DUE_ALERT = "accounts.access_review.due"
PERMISSION = "accounts.review_access"


def may_review(user: Any) -> bool:
    """Superusers and the Auditor role (``accounts.review_access``), active ones."""
    if not (user and user.is_authenticated and user.is_active):
        return False
    return bool(user.is_superuser or user.has_perm(PERMISSION))


@dataclass(frozen=True)
class StaffAccess:
    """One staff member as the review shows them."""

    user: User
    groups: tuple[str, ...]
    permissions: frozenset[str]  # effective, "app.codename"; empty for a superuser
    beyond_roles: tuple[str, ...]  # effective permissions outside their roles' sets
    direct: tuple[str, ...]  # given to the person, not through a group
    totp_enrolled: bool
    inactive: bool
    over_privileged: tuple[str, ...]  # the reasons, empty when not

    @property
    def staff_groups(self) -> tuple[str, ...]:
        return tuple(name for name in self.groups if name in STAFF_GROUP_PERMISSIONS)

    @property
    def other_groups(self) -> tuple[str, ...]:
        return tuple(name for name in self.groups if name not in STAFF_GROUP_PERMISSIONS)

    @property
    def flagged(self) -> bool:
        return self.inactive or bool(self.over_privileged)


@dataclass(frozen=True)
class SignOff:
    """The last review signed off: who (a user id), when, and what it counted."""

    reviewer_id: int | None
    at: datetime
    data: dict[str, Any]


def _label(permission: Any) -> str:
    return f"{permission.content_type.app_label}.{permission.codename}"


def _is_inactive(user: User, *, now: datetime) -> bool:
    if not user.is_active:
        return False  # already cannot sign in: nothing left to take away by that flag
    if user.last_login is None:
        return True
    return now - user.last_login > timedelta(days=settings.ACCESS_REVIEW_INACTIVE_DAYS)


def _access(user: User, *, enrolled: set[int], now: datetime) -> StaffAccess:
    groups = sorted(user.groups.all(), key=lambda group: group.name)
    names = tuple(group.name for group in groups)
    direct = tuple(sorted(_label(p) for p in user.user_permissions.all()))
    through_groups = {_label(p) for group in groups for p in group.permissions.all()}
    effective = frozenset(through_groups | set(direct))
    stated = {label for name in names for label in STAFF_GROUP_PERMISSIONS.get(name, ())}
    beyond = tuple(sorted(effective - stated))
    reasons = []
    if user.is_superuser:
        reasons.append("superuser: every permission")
    if direct:
        reasons.append(f"{len(direct)} permission(s) given directly")
    other = [name for name in names if name not in STAFF_GROUP_PERMISSIONS]
    if other:
        reasons.append(f"group(s) outside the staff roles: {', '.join(other)}")
    staff_roles = [name for name in names if name in STAFF_GROUP_PERMISSIONS]
    if len(staff_roles) >= 2:
        reasons.append(f"{len(staff_roles)} staff roles: {', '.join(staff_roles)}")
    widened = sorted(set(beyond) - set(direct))
    if widened and not other:
        # Only a role's group itself can give these: it was widened past its stated set.
        reasons.append(f"{len(widened)} permission(s) beyond the roles' stated sets")
    return StaffAccess(
        user=user,
        groups=names,
        permissions=effective,
        beyond_roles=beyond,
        direct=direct,
        totp_enrolled=user.pk in enrolled,
        inactive=_is_inactive(user, now=now),
        over_privileged=tuple(reasons),
    )


def staff_access(*, actor: Any, now: datetime | None = None) -> list[StaffAccess]:
    """Every staff member, by id, as ``actor`` may review them (else PermissionDenied).

    A fixed number of queries whatever the number of staff: the people, their groups'
    and own permissions prefetched, and the confirmed TOTP devices.
    """
    if not may_review(actor):
        raise PermissionDenied
    now = now or timezone.now()
    permissions = "permissions__content_type"
    people = (
        User.objects.filter(
            Q(is_staff=True) | Q(is_superuser=True) | Q(groups__name__in=STAFF_GROUP_PERMISSIONS)
        )
        .distinct()
        .order_by("pk")
        .prefetch_related(
            Prefetch("groups", queryset=Group.objects.prefetch_related(permissions)),
            "user_permissions__content_type",
        )
    )
    people_list = list(people)
    enrolled = set(
        TOTPDevice.objects.filter(
            confirmed=True, user__in=[person.pk for person in people_list]
        ).values_list("user_id", flat=True)
    )
    return [_access(person, enrolled=enrolled, now=now) for person in people_list]


def fingerprint(rows: list[StaffAccess]) -> str:
    """A digest of what the review showed (who, their rights and flags): a sign-off is
    refused when the rights changed between the page and the signature."""
    digest = hashlib.sha256()
    for row in rows:
        user = row.user
        line = (
            f"{user.pk}|{user.is_active}|{user.is_staff}|{user.is_superuser}|"
            f"{','.join(row.groups)}|{','.join(sorted(row.permissions))}|"
            f"{','.join(row.direct)}|{row.totp_enrolled}|{row.inactive}\n"
        )
        digest.update(line.encode())
    return digest.hexdigest()


def last_sign_off() -> SignOff | None:
    entry = AuditEntry.objects.filter(action=SIGNED_OFF).order_by("-sequence").first()
    if entry is None:
        return None
    reviewer = int(entry.actor_id) if entry.actor_id.isdigit() else None
    return SignOff(reviewer_id=reviewer, at=entry.created_at, data=entry.data)


def next_due(last: SignOff | None) -> datetime | None:
    """When the next review is due; None when none was ever signed off (due now)."""
    if last is None:
        return None
    return last.at + timedelta(days=settings.ACCESS_REVIEW_INTERVAL_DAYS)


def is_due(*, now: datetime | None = None) -> bool:
    due = next_due(last_sign_off())
    return due is None or due <= (now or timezone.now())


# A sign-off repeated within this long, of the same review, records nothing new.
REPEAT_WINDOW = timedelta(hours=1)


class ReviewChangedError(Exception):
    """The staff's rights changed after the reviewer loaded the review."""


@transaction.atomic
def access_review_sign_off(*, actor: User, note: str, reviewed: str) -> AuditEntry:
    """Record ``actor``'s sign-off of the review whose :func:`fingerprint` is
    ``reviewed``, with their note, and close the "review due" alert.

    The caller checks the step-up (a view's job). The note goes in the entry's
    sealed personal part: it may well name people.
    """
    # One sign-off at a time per reviewer; the same review signed again (a replayed or
    # doubled form) within the hour is the sign-off already recorded.
    User.objects.select_for_update().filter(pk=actor.pk).exists()
    repeat = (
        AuditEntry.objects.filter(
            action=SIGNED_OFF,
            actor_id=str(actor.pk),
            data__fingerprint=reviewed,
            created_at__gte=timezone.now() - REPEAT_WINDOW,
        )
        .order_by("-sequence")
        .first()
    )
    if repeat is not None:
        return repeat
    rows = staff_access(actor=actor)
    if fingerprint(rows) != reviewed:
        raise ReviewChangedError(
            "Staff rights changed since the review was loaded: review the page again."
        )
    inactive = [row.user.pk for row in rows if row.inactive]
    over = [row.user.pk for row in rows if row.over_privileged]
    entry = audit.record(
        SIGNED_OFF,
        category=audit.Category.SECURITY,
        actor=actor,
        data={
            "staff": len(rows),
            "inactive": len(inactive),
            "over_privileged": len(over),
            "reviewed": [row.user.pk for row in rows],
            "inactive_ids": inactive,
            "over_privileged_ids": over,
            "without_totp": len([row for row in rows if not row.totp_enrolled]),
            "inactive_days": settings.ACCESS_REVIEW_INACTIVE_DAYS,
            "fingerprint": reviewed,
        },
        personal_data={"note": note},
    )
    alerts.clear_alert(DUE_ALERT, summary=f"Access review signed off by user {actor.pk}.")
    return entry


def remind(*, now: datetime | None = None) -> bool:
    """Raise the "review due" alert when it is due (True when this call opened it),
    else clear any left open."""
    now = now or timezone.now()
    last = last_sign_off()
    due = next_due(last)
    if due is not None and due > now:
        alerts.clear_alert(DUE_ALERT, summary="The access review is signed off.")
        return False
    if last is None:
        summary = "The quarterly access review has never been signed off."
    else:
        summary = (
            f"The quarterly access review is due: last signed off {last.at:%Y-%m-%d} "
            f"(every {settings.ACCESS_REVIEW_INTERVAL_DAYS} days)."
        )
    return alerts.raise_alert(
        DUE_ALERT,
        summary=summary,
        lines=[
            "A superuser or an Auditor reviews staff access in the back-office "
            "(Access review) and signs it off.",
        ],
        group="Auditor",
    )
