import logging

from celery import shared_task

from audit.services import verify_chain as verify

logger = logging.getLogger(__name__)


@shared_task(name="audit.tasks.verify_chain")
def verify_chain() -> dict[str, object]:
    """Periodic (beat): walk the audit chain and log loudly if it is broken."""
    report = verify()
    if not report.ok:
        logger.error(
            "audit.chain.broken",
            extra={
                "entry_id": report.broken_at.pk if report.broken_at else None,
                "reason": report.reason,
            },
        )
    return {"ok": report.ok, "entries": report.entries, "reason": report.reason}
