"""What accounts purges and when (rules of audit.purges), and the holds it knows of.

django-axes keeps three tables: ``AccessAttempt`` (the failures counted towards a
lock-out, one row per username, address and agent, its time moved to the last
failure), ``AccessFailureLog`` (each failure, written only with
AXES_ENABLE_ACCESS_FAILURE_LOG) and ``AccessLog`` (each sign-in, off here:
AXES_DISABLE_ACCESS_LOG). Rows are deleted 90 days after their time, whichever table
holds them: a lock-out lasts AXES_COOLOFF_TIME, and the hourly security counts and the
audit entries are the longer record.

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
from django.db import models
from django.db.models import QuerySet

from accounts.models import DataSubjectRequest
from audit import purges

AXES_RETENTION = timedelta(days=90)

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


RULES = [purges.register(AxesRecords())]
purges.register_hold(OPEN_DATA_SUBJECT_REQUEST, _open_request_accounts)
