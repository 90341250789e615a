"""Reading what the report and a run say about one rule."""

from __future__ import annotations

from django.utils import timezone

from audit import purges
from audit.models import AuditEntry


def rule(name: str) -> purges.RetentionRule:
    return next(each for each in purges.rules() if each.name == name)


def forecast(name: str) -> purges.Forecast:
    """The rule's forecast now (the clock as the test set it)."""
    return rule(name).forecast(timezone.now())


def purge(name: str) -> int:
    """Run the one rule now, as retention_purge --rule does."""
    return purges.run(rules=[name])[name]


def purged_entries(name: str) -> list[AuditEntry]:
    return [
        entry
        for entry in AuditEntry.objects.filter(action="retention.purged").order_by("pk")
        if entry.data["rule"] == name
    ]
