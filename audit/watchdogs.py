"""The audit chain verifies (core/alerts.py runs it every five minutes).

Runs the incremental verification (``verify_chain(full=False)``): each stream is
read from the point it last verified, so a pass reads only the entries written since
and stays cheap as the log grows, and the part verified before is counted (a deletion
anywhere shows); an edit behind the verified point is the daily checkpoint task's full
walk to find (``audit.chain.full``), or ``audit_verify --full``'s. A chain that
stops verifying (an entry altered, removed or inserted, a checkpoint that does not
match, a redaction nobody recorded) is an incident until a pass verifies it again.
The reason names entries by sequence number only.
"""

from __future__ import annotations

from django.conf import settings

from audit.services import verify_chain
from core.alerts import Problem, register_watchdog


def chain() -> list[Problem]:
    report = verify_chain(full=False)
    if report.ok:
        return []
    where = f"entry #{report.broken_at.sequence}" if report.broken_at else "the chain's end"
    return [
        Problem(
            "audit.chain",
            f"The audit chain does not verify at {where}.",
            [
                report.reason,
                "Treat it as a security incident (the incident response plan in docs/): "
                "keep the database as it is and compare with the exported checkpoints.",
                f"Audit log: {settings.SITE_URL}/admin/audit/auditentry/",
            ],
            group="Auditor",
        )
    ]


register_watchdog("audit.chain", chain)
