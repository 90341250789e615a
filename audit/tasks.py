import logging

from celery import shared_task

from audit import retention
from audit.checkpoints import ChainBrokenError, checkpoints_write
from audit.sequencer import integrate_pending, integration_delay
from audit.services import verify_chain as verify
from core import alerts

logger = logging.getLogger(__name__)


@shared_task(name="audit.tasks.integrate", ignore_result=True)
def integrate() -> dict[str, object]:
    """Periodic (beat, every few seconds): integrate queued audit entries that no
    writer's after-commit try picked up (a process killed between its commit and its
    try, a failed try); the delay is then bounded by this task's interval."""
    integrated = integrate_pending()
    delay = integration_delay()
    age = delay.oldest_age
    return {
        "integrated": integrated,
        "queued": delay.queued,
        "oldest_age_seconds": age.total_seconds() if age else 0.0,
    }


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


FULL_WALK_ALERT = "audit.chain.full"


@shared_task(name="audit.tasks.write_checkpoint")
def write_checkpoint() -> dict[str, object]:
    """Periodic (beat, daily): walk every stream in full (the hourly run reads only
    what is new and counts the rest: an edit behind its verified point is the full
    walk's to find), alerting on a break; then close each stream's segment with a
    signed checkpoint (a stream with nothing new since its last is skipped: its last
    still holds); refuse, loudly, when the chain does not verify."""
    full = verify(full=True)
    if full.ok:
        alerts.clear_alert(FULL_WALK_ALERT, summary="The audit chain verifies in full again.")
    else:
        alerts.raise_alert(
            FULL_WALK_ALERT,
            summary="The audit chain does not verify in full: no checkpoint was signed.",
            lines=[full.reason, "Run manage.py audit_verify --full; see the incident plan."],
            group="Auditor",
        )
        logger.error("audit.checkpoint.refused", extra={"reason": full.reason})
        return {"ok": False, "reason": full.reason}
    try:
        written = checkpoints_write(actor="audit.tasks.write_checkpoint")
    except ChainBrokenError as exc:
        logger.error("audit.checkpoint.refused", extra={"reason": str(exc)})
        return {"ok": False, "reason": str(exc)}
    return {
        "ok": True,
        "checkpoints": {checkpoint.stream: checkpoint.position for checkpoint in written},
    }
