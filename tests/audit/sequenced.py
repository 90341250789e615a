"""What the sequencer does once an audited transaction commits, done by hand: the
test's own transaction never commits, so its after-commit integration never runs."""

from __future__ import annotations

from audit.models import AuditEntry
from audit.sequencer import integrate_pending


def integrated(*entries: AuditEntry) -> list[AuditEntry]:
    """Integrate every queued entry; return ``entries`` as stored now (with places)."""
    integrate_pending(wait=True)
    return [AuditEntry.objects.get(pk=entry.pk) for entry in entries]
