import logging

from celery import shared_task

from audit import retention
from audit.checkpoints import ChainBrokenError, checkpoints_write
from audit.services import verify_chain as verify

logger = logging.getLogger(__name__)


@shared_task(name="audit.tasks.verify_chain")
def verify_chain() -> dict[str, object]:
    """Periodic (beat, hourly): verify each stream from where it was last verified
    (incremental: an hourly run reads only what is new) and log loudly if it is
    broken; then drop the security event counts past their retention (this is the
    audit app's hourly task, so its hourly upkeep rides on it)."""
    report = verify(full=False)
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
    """Periodic (beat, daily): close each stream's segment with a signed checkpoint
    (a stream with nothing new since its last is skipped: its last still holds);
    refuse, loudly, when the chain does not verify."""
    try:
        written = checkpoints_write(actor="audit.tasks.write_checkpoint")
    except ChainBrokenError as exc:
        logger.error("audit.checkpoint.refused", extra={"reason": str(exc)})
        return {"ok": False, "reason": str(exc)}
    return {
        "ok": True,
        "checkpoints": {checkpoint.stream: checkpoint.position for checkpoint in written},
    }
