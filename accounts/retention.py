"""What accounts purges and when (rules of audit.purges), and the holds it knows of.

django-axes keeps three tables: ``AccessAttempt`` (the failures counted towards a
lock-out, one row per username, address and agent, its time moved to the last
failure), ``AccessFailureLog`` (each failure, written only with
AXES_ENABLE_ACCESS_FAILURE_LOG) and ``AccessLog`` (each sign-in, off here:
AXES_DISABLE_ACCESS_LOG). Rows are deleted 90 days after their time, whichever table
holds them: a lock-out lasts AXES_COOLOFF_TIME, and the hourly security counts and the
audit entries are the longer record.

The "recent sign-ins" of the account page are deleted after 90 days (the sign-in's audit
entry is the longer record); one-time links (accounts/links.py) 30 days after their
expiry, spent or not: only a digest is stored, and a dead link serves no one.

Hold: an open data-subject request keeps everything of that person (the account here;
bookings/retention.py adds their bookings and payments), so that what is exported or
erased is what there was when it was asked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib.sessions.models import Session
from django.db import models
from django.db.models import QuerySet

from accounts.models import ApiToken, DataSubjectRequest, OneTimeLink, SignIn
from audit import purges

AXES_RETENTION = timedelta(days=90)
SESSION_RETENTION = timedelta(days=1)
API_TOKEN_RETENTION = timedelta(days=365)

OPEN_DATA_SUBJECT_REQUEST = "open data-subject request"


def open_request_subjects() -> QuerySet[DataSubjectRequest, int]:
    """The pks of the people with a data-subject request not yet completed or rejected."""
    return DataSubjectRequest.objects.filter(
        status__in=DataSubjectRequest.OPEN_STATUSES
    ).values_list("subject_id", flat=True)


def _open_request_accounts() -> Iterator[tuple[str, str]]:
    for pk in open_request_subjects().distinct():
        yield ("accounts.user", str(pk))


class _AxesTable(purges.RowsRule):
    """One of axes' tables (not registered: :class:`AxesRecords` runs them together)."""

    period = AXES_RETENTION
    clock = "attempt_time"

    def __init__(self, model: type[models.Model]) -> None:
        self.model = model
        self.name = f"accounts.axes.{model._meta.model_name}"

    def candidates(self) -> QuerySet[Any]:
        return self.model._default_manager.all()

    def purge_rows(self, rows: QuerySet[Any], now: datetime) -> int:
        # An attempt's expiration row goes with it (CASCADE): only the attempts count.
        return rows.delete()[1].get(self.model._meta.label, 0)


class AxesRecords(purges.RetentionRule):
    name = "accounts.axes"
    description = "django-axes attempts, access logs and failure logs, deleted."
    period = AXES_RETENTION
    counted_from = "the attempt (an attempt: its last failure)"

    def __init__(self) -> None:
        self.tables = [_AxesTable(model) for model in (AccessAttempt, AccessFailureLog, AccessLog)]

    def forecast(self, now: datetime) -> purges.Forecast:
        parts = [table.forecast(now) for table in self.tables]
        held: Counter[str] = Counter()
        for part in parts:
            held.update(part.held)
        upcoming = [part.next_due_at for part in parts if part.next_due_at]
        return purges.Forecast(
            due=sum(part.due for part in parts),
            held=dict(held),
            next_due_at=min(upcoming) if upcoming else None,
        )

    def purge_batch(self, now: datetime, limit: int) -> int:
        for table in self.tables:
            if purged := table.purge_batch(now, limit):
                return purged
        return 0


SIGN_IN_RETENTION = timedelta(days=90)
LINK_RETENTION = timedelta(days=30)


class _PersonsRows(purges.RowsRule):
    """Rows of one person (a ``user`` column): an open data-subject request about them
    holds them."""

    def held(self, expired: QuerySet[Any]) -> dict[Any, str]:
        by_user = purges.held_pks("accounts.user")
        if not by_user:
            return {}
        return {
            pk: by_user[str(user_pk)]
            for pk, user_pk in expired.filter(user_id__in=list(by_user)).values_list(
                "pk", "user_id"
            )
        }


class SignIns(_PersonsRows):
    """The "recent sign-ins" the account page shows (network and device only); the
    audit entries of the sign-ins are the longer record. An open data-subject request
    holds its person's rows."""

    name = "accounts.sign_ins"
    description = "Recent sign-ins shown on the account page (time, network, device), deleted."
    period = SIGN_IN_RETENTION
    counted_from = "the sign-in"
    clock = "at"

    def candidates(self) -> QuerySet[SignIn]:
        return SignIn.objects.all()


class OneTimeLinks(purges.RowsRule):
    """Links emailed to people (verification, reset, recovery, claims, invitations):
    only a digest is stored, and once spent or expired it serves no one. Counted from
    the expiry, which a spent link reached or would have reached."""

    name = "accounts.one_time_links"
    description = (
        "One-time links (verification, password reset, recovery, claims, invitations), "
        "spent or expired, deleted."
    )
    period = LINK_RETENTION
    counted_from = "the link's expiry"
    clock = "expires_at"

    def candidates(self) -> QuerySet[OneTimeLink]:
        return OneTimeLink.objects.all()


class ApiTokens(_PersonsRows):
    """Personal API tokens, a year after they expired (a revoked one too, counted from
    the expiry it had): their name, prefix and last address serve an inquiry into
    their use that long, as the security audit stream does."""

    name = "accounts.api_tokens"
    description = "API tokens (name, prefix, scopes, last use), expired, deleted."
    period = API_TOKEN_RETENTION
    counted_from = "the token's expiry"
    clock = "expires_at"

    def candidates(self) -> QuerySet[ApiToken]:
        return ApiToken.objects.all()


class Sessions(purges.RowsRule):
    """Django's stored sessions: one that expired (its cookie's age) serves no one, and
    Django deletes none by itself (``clearsessions`` is this rule's job here). The
    shorter idle and absolute limits end sessions earlier (accounts.sessions); the row
    then goes a day after the cookie's own expiry."""

    name = "accounts.sessions"
    description = "Stored sessions, expired, deleted."
    period = SESSION_RETENTION
    counted_from = "the session's expiry"
    clock = "expire_date"

    def candidates(self) -> QuerySet[Session]:
        return Session.objects.all()


RULES = [
    purges.register(rule)
    for rule in (AxesRecords(), SignIns(), OneTimeLinks(), ApiTokens(), Sessions())
]
purges.register_hold(OPEN_DATA_SUBJECT_REQUEST, _open_request_accounts)
