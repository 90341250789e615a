import logging

from celery import shared_task

from audit import retention
from audit.checkpoints import ChainBrokenError, checkpoint_write
from audit.services import verify_chain as verify

logger = logging.getLogger(__name__)


@shared_task(name="audit.tasks.verify_chain")
def verify_chain() -> dict[str, object]:
    """Periodic (beat, hourly): walk the audit chain and log loudly if it is broken;
    then drop the security event counts past their retention (this is the audit
    app's hourly task, so its hourly upkeep rides on it)."""
    report = verify()
    if not report.ok:
        logger.error(
            "audit.chain.broken",
            extra={
                "entry_id": report.broken_at.pk if report.broken_at else None,
                "reason": report.reason,
            },
        )
    purged = retention.security_event_counts_purge()
    return {
        "ok": report.ok,
        "entries": report.entries,
        "reason": report.reason,
        "security_event_counts_purged": purged,
    }


@shared_task(name="audit.tasks.write_checkpoint")
def write_checkpoint() -> dict[str, object]:
    """Periodic (beat, daily): sign a checkpoint of the chain's head; refuse, loudly,
    when the chain does not verify."""
    try:
        checkpoint = checkpoint_write(actor="audit.tasks.write_checkpoint")
    except ChainBrokenError as exc:
        logger.error("audit.checkpoint.refused", extra={"reason": str(exc)})
        return {"ok": False, "reason": str(exc)}
    return {"ok": True, "sequence": checkpoint.sequence, "checkpoint": checkpoint.pk}
