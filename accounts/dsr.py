"""Data-subject requests: file, export (access), rectify, erase.

Each kind of data is an :class:`accounts.privacy.DataKind` registered by the app
that owns it; this module assembles them. An erasure is a list of
:class:`~accounts.models.ErasureStep` rows, one per kind: our database's steps run in
order, each in its own transaction and each idempotent; the providers' (Stripe,
Calendly) run after the commit, through the outbox, from arguments saved while the
account still named the person. A failed step (a provider down) is recorded and run
again. While any legal hold applies to the person (an open dispute, a refund pending
or waiting for approval, an upcoming session, another open request) no step runs at
all: the request is held, saying each reason once, and carried on once they are
gone. Nothing is deleted by cascade: the account stays, anonymised, as the pseudonym
its payments and consents are kept under.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.sessions.models import Session
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Field, Q
from django.template.loader import render_to_string
from django.utils import timezone

import audit
from accounts import rights
from accounts.models import ApiToken, DataSubjectRequest, ErasureStep, OneTimeLink, SignIn, User
from accounts.privacy import DataKind, Step, Subject, jsonable, registry, subject_for
from audit.models import AuditEntry
from audit.services import redact_personal_data
from core import outbox
from core.actors import Actor
from core.encryption import blind_index_bucket, blind_indexes
from core.models import OutboxMessage
from core.providers import ProviderError
from webhooks.models import WebhookEvent

logger = logging.getLogger(__name__)

EXPORT_SALT = "accounts.dsr.export"
EXPORT_FORMATS = {"json": "application/json", "html": "text/html; charset=utf-8"}
ERASED_EMAIL_DOMAIN = "erased.invalid"
STEP_TASK = "accounts.dsr.erasure_step_run"


class DsrRefused(Exception):  # noqa: N818 (the outcome a page shows)
    """The request cannot be filed or acted on now; the message says why."""


class ExportLinkInvalid(Exception):  # noqa: N818 (the outcome a page shows)
    """A download link that is expired, altered, someone else's, or superseded."""


# --- Filing ---------------------------------------------------------------------------


def dsr_file(
    *,
    subject: User,
    kind: str,
    actor: AbstractBaseUser,
    notes: str = "",
    handler: User | None = None,
    filed_by_subject: bool = False,
) -> DataSubjectRequest:
    """Open a request about ``subject``: due 30 days after receipt, one open request
    of each kind per person. Audited (never with the notes: they may name people)."""
    if kind not in DataSubjectRequest.Kind.values:
        raise DsrRefused(f"Unknown kind of request {kind!r}.")
    if kind != DataSubjectRequest.Kind.ACCESS and rights.is_staff_account(subject):
        raise DsrRefused("A staff account is changed or removed by a superuser, not here.")
    if rights.is_staff_account(subject) and not _may_handle_staff(actor, subject):
        raise DsrRefused("A staff member's request is handled by a superuser.")
    if _open(subject, kind).exists():
        raise DsrRefused("A request of this kind is already open.")
    try:
        with transaction.atomic():
            request = DataSubjectRequest.objects.create(
                subject=subject,
                kind=kind,
                notes=notes,
                handler=handler,
                filed_by_subject=filed_by_subject,
            )
            audit.record(
                "accounts.dsr.filed",
                category=audit.Category.DATA,
                actor=actor,
                target=request,
                data={
                    "kind": kind,
                    "subject": subject.pk,
                    "via": "client" if filed_by_subject else "staff",
                    "due_at": request.due_at.isoformat(),
                },
            )
    except IntegrityError:  # filed twice at once: the constraint kept one
        raise DsrRefused("A request of this kind is already open.") from None
    return request


def eligible_handlers() -> Any:
    """Who may handle a request: an active staff member of Privacy (who may change
    requests) or a superuser."""
    may_change = Q(
        user_permissions__content_type__app_label="accounts",
        user_permissions__codename="change_datasubjectrequest",
    ) | Q(
        groups__permissions__content_type__app_label="accounts",
        groups__permissions__codename="change_datasubjectrequest",
    )
    staff = User.objects.filter(is_active=True, is_staff=True)
    pks = staff.filter(Q(is_superuser=True) | may_change).values("pk")
    return User.objects.filter(pk__in=pks)


def _may_handle_staff(actor: AbstractBaseUser, subject: User) -> bool:
    """A staff member's data (their activity in the audit trail) is not a Privacy
    colleague's to read: a superuser files and prepares their request; they may file
    their own. Builders' members are not staff: clients of the law like any other."""
    return bool(getattr(actor, "is_superuser", False)) or actor.pk == subject.pk


def _open(subject: User, kind: str | None = None) -> Any:
    requests = DataSubjectRequest.objects.filter(
        subject=subject, status__in=DataSubjectRequest.OPEN_STATUSES
    )
    return requests.filter(kind=kind) if kind else requests


def dsr_close(*, request: DataSubjectRequest, actor: AbstractBaseUser, status: str) -> None:
    """Mark an access or rectification request completed (or any request rejected)."""
    if status not in (DataSubjectRequest.Status.COMPLETED, DataSubjectRequest.Status.REJECTED):
        raise ValueError(f"cannot close a request as {status!r}")
    if status == DataSubjectRequest.Status.COMPLETED and request.kind == "erasure":
        raise DsrRefused("An erasure completes when its last step is done.")
    with transaction.atomic():
        request = DataSubjectRequest.objects.select_for_update().get(pk=request.pk)
        if not request.is_open:
            return
        request.status = status
        request.completed_at = timezone.now()
        request.save(update_fields=["status", "completed_at"])
        audit.record(
            f"accounts.dsr.{status}",
            category=audit.Category.DATA,
            actor=actor,
            target=request,
            data={"kind": request.kind},
        )


# --- Access ---------------------------------------------------------------------------


def subject_export(*, subject: User) -> dict[str, Any]:
    """Everything held on ``subject``, by kind (providers asked over the network)."""
    person = subject_for(subject)
    sections: dict[str, Any] = {}
    for kind in registry:
        data = kind.export(person)
        if data is not None:
            sections[kind.name] = {"title": kind.title, "data": jsonable(data)}
    return {
        "format": "slotpay.data-subject-export/1",
        "subject": {"id": subject.pk},
        "generated_at": timezone.now().isoformat(),
        "sections": sections,
    }


def dsr_export_prepare(*, request: DataSubjectRequest, actor: AbstractBaseUser) -> int:
    """Build the access export and keep it (encrypted) on the request; returns its
    version. Links to an earlier version stop working. Providers are asked first,
    outside any transaction."""
    if request.kind != DataSubjectRequest.Kind.ACCESS or not request.is_open:
        raise DsrRefused("Only an open access request has an export.")
    if rights.is_staff_account(request.subject) and not getattr(actor, "is_superuser", False):
        raise DsrRefused("A staff member's export is prepared by a superuser.")
    export = subject_export(subject=request.subject)
    with transaction.atomic():
        request = DataSubjectRequest.objects.select_for_update().get(pk=request.pk)
        request.export = json.dumps(export, sort_keys=True)
        request.export_prepared_at = timezone.now()
        request.export_version += 1
        request.status = DataSubjectRequest.Status.IN_PROGRESS
        request.handler = request.handler or actor  # type: ignore[assignment]
        request.save(
            update_fields=[
                "export",
                "export_prepared_at",
                "export_version",
                "status",
                "handler",
            ]
        )
        audit.record(
            "accounts.dsr.export_prepared",
            category=audit.Category.DATA,
            actor=actor,
            target=request,
            data={"version": request.export_version, "sections": sorted(export["sections"])},
        )
    return request.export_version


def export_link_token(*, request: DataSubjectRequest, actor: AbstractBaseUser, fmt: str) -> str:
    """A signed token naming the request, its export's version, the format and who may
    use it; it expires after DSR_EXPORT_LINK_MAX_AGE_SECONDS."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    payload = {"r": request.pk, "v": request.export_version, "u": actor.pk, "f": fmt}
    return signing.dumps(payload, salt=EXPORT_SALT)


@dataclass(frozen=True)
class ExportFile:
    request: DataSubjectRequest
    fmt: str
    filename: str
    content_type: str
    content: bytes


def export_for_token(*, token: str, user: AbstractBaseUser) -> tuple[DataSubjectRequest, str]:
    """The request and format a download link names, if it is still good for ``user``."""
    try:
        payload = signing.loads(
            token, salt=EXPORT_SALT, max_age=settings.DSR_EXPORT_LINK_MAX_AGE_SECONDS
        )
    except signing.SignatureExpired:
        raise ExportLinkInvalid("This download link has expired.") from None
    except signing.BadSignature:
        raise ExportLinkInvalid("This download link is not valid.") from None
    request = DataSubjectRequest.objects.filter(pk=payload.get("r")).first()
    if request is None or payload.get("u") != user.pk or payload.get("f") not in EXPORT_FORMATS:
        raise ExportLinkInvalid("This download link is not valid.")
    if not request.export or payload.get("v") != request.export_version:
        raise ExportLinkInvalid("This export was replaced or removed: prepare it again.")
    return request, payload["f"]


def dsr_export_download(
    *, request: DataSubjectRequest, fmt: str, actor: AbstractBaseUser
) -> ExportFile:
    """The export as a file, the download audited (who, whose, what, why)."""
    if not request.export:
        raise ExportLinkInvalid("This export was removed.")
    export = json.loads(request.export)
    if fmt == "json":
        content = json.dumps(export, indent=2, sort_keys=True).encode()
    else:
        content = export_html(export).encode()
    audit.record(
        "accounts.dsr.export_downloaded",
        category=audit.Category.ACCESS,
        actor=actor,
        target=request.subject,
        data={
            "request": request.pk,
            "version": request.export_version,
            "format": fmt,
            "fields": sorted(export.get("sections", {})),
            "reason": f"data-subject access request {request.pk}",
            "via": "admin.dsr_export",
        },
    )
    return ExportFile(
        request=request,
        fmt=fmt,
        filename=f"slotpay-data-export-{request.pk}.{fmt}",
        content_type=EXPORT_FORMATS[fmt],
        content=content,
    )


def export_html(export: dict[str, Any]) -> str:
    """The export as a page a person can read (the same data as the JSON)."""
    sections = [
        {"name": name, "title": section["title"], "rows": _rows(section["data"])}
        for name, section in export.get("sections", {}).items()
    ]
    return render_to_string(
        "accounts/dsr/export.html",
        {
            "export": export,
            "sections": sections,
            "generated_at": _readable(str(export.get("generated_at", ""))),
        },
    )


_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}")


def _readable(value: str) -> str:
    """A timestamp (``2026-11-30 01:06:25.769431+00:00``) as a person reads it, in
    UTC and saying so (``2026-11-30 01:06 UTC``); any other value as it is."""
    if not _TIMESTAMP.match(value):
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return value
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _rows(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Flatten nested data into (path, value) lines."""
    if isinstance(data, dict):
        rows = []
        for key, value in data.items():
            rows += _rows(value, f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(data, list):
        rows = []
        for index, value in enumerate(data):
            rows += _rows(value, f"{prefix}[{index}]")
        return rows or [(prefix, "(none)")]
    return [(prefix, "" if data is None else _readable(str(data)))]


# --- Rectification --------------------------------------------------------------------

RECTIFIABLE = ("name", "email", "time_zone")


def subject_rectify(
    *,
    request: DataSubjectRequest,
    actor: AbstractBaseUser,
    changes: dict[str, str],
    reason: str,
) -> list[str]:
    """Correct the subject's personal fields; returns the fields changed. Audited with
    the old and new values in the entry's sealed personal part."""
    if request.kind != DataSubjectRequest.Kind.RECTIFICATION or not request.is_open:
        raise DsrRefused("Only an open rectification request corrects data.")
    if not reason.strip():
        raise DsrRefused("Say why the data is corrected.")
    unknown = set(changes) - set(RECTIFIABLE)
    if unknown:
        raise DsrRefused(f"These fields are not corrected here: {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        subject = User.objects.select_for_update().get(pk=request.subject_id)
        if rights.is_staff_account(subject):
            raise DsrRefused("A staff account is corrected by a superuser.")
        before = {name: getattr(subject, name) for name in RECTIFIABLE}
        for name, value in changes.items():
            setattr(subject, name, _rectified(name, value, subject))
        subject.clean()
        changed = [name for name in RECTIFIABLE if getattr(subject, name) != before[name]]
        if not changed:
            return []
        if "email" in changed and User.objects.email_taken(subject.email, other_than=subject.pk):
            raise DsrRefused("Another account has this email address.")
        subject.save(update_fields=changed)
        audit.record(
            "accounts.user.rectified",
            category=audit.Category.DATA,
            actor=actor,
            target=subject,
            data={"fields": changed, "request": request.pk, "reason": reason.strip()},
            personal_data={
                name: {"from": before[name], "to": getattr(subject, name)} for name in changed
            },
        )
    return changed


def _rectified(name: str, value: str, subject: User) -> str:
    """``value`` checked as the model's field checks it (length, email, time zone):
    a refusal saying what is wrong, never an error page."""
    value = (value or "").strip()
    if "\x00" in value:
        raise DsrRefused(f"The {name.replace('_', ' ')} holds a null character.")
    if name == "email" and not value:
        raise DsrRefused("The email address is required.")
    try:
        field = User._meta.get_field(name)
        if isinstance(field, Field):
            field.clean(value, subject)
    except ValidationError as exc:
        raise DsrRefused(f"The {name.replace('_', ' ')}: {' '.join(exc.messages)}") from None
    return value


# --- Erasure --------------------------------------------------------------------------


def erasure_holds(*, request: DataSubjectRequest) -> list[str]:
    """Every reason the erasure must wait now, each once (two kinds may give the same
    one: a disputed booking holds the booking and Calendly's copy). While any applies,
    no step runs: a hold for one thing keeps everything a dispute or a refund may need
    (sessions, emails, webhook payloads are evidence too)."""
    return _reasons(request.subject, others=_open(request.subject).exclude(pk=request.pk))


def holds_for_subject(*, subject: User) -> list[str]:
    """What would hold an erasure of ``subject`` now, before any request is filed."""
    return _reasons(subject, others=_open(subject).exclude(kind=DataSubjectRequest.Kind.ERASURE))


def _reasons(subject: User, *, others: Any) -> list[str]:
    person = subject_for(subject)
    reasons = [
        f"{other.get_kind_display()} request {other.pk} is still open: complete it first."
        for other in others.order_by("pk")
    ]
    reasons += [reason for kind in registry for reason in kind.holds(person)]
    return list(dict.fromkeys(reasons))


def user_delete(*, user: User, actor: AbstractBaseUser) -> DataSubjectRequest:
    """ "Delete" in the back-office: an erasure request (the open one, else a new one),
    carried out. Never a cascade."""
    request = _open(user, DataSubjectRequest.Kind.ERASURE).first() or dsr_file(
        subject=user,
        kind=DataSubjectRequest.Kind.ERASURE,
        actor=actor,
        handler=actor,  # type: ignore[arg-type]
        notes="Deleted from the back-office's user list.",
    )
    return subject_erase(request=request, actor=actor)


def subject_erase(*, request: DataSubjectRequest, actor: AbstractBaseUser) -> DataSubjectRequest:
    """Carry out (or carry on with) an erasure: plan its steps on the first run, run
    our database's steps that are not done and not held, then queue the providers'.
    Run again after a hold lifts or a step failed: done steps are left alone."""
    if request.kind != DataSubjectRequest.Kind.ERASURE or not request.is_open:
        raise DsrRefused("Only an open erasure request is carried out.")
    holds = erasure_holds(request=request)
    if holds:
        return _hold(request, holds, actor=actor)
    _plan(request, actor)
    steps = list(request.steps.exclude(status=ErasureStep.Status.DONE).order_by("position"))
    for step in steps:
        kind = registry.get(step.name)
        reasons = []
        if kind.position >= FINAL_POSITION:
            # The account and the audit trail go once everything else has gone.
            reasons = _waiting_for(request, step)
        if reasons:
            _step_outcome(step, ErasureStep.Status.HELD, " ".join(reasons), actor=actor)
        elif kind.provider:
            _step_queue(step)
        else:
            _step_run_local(step, kind, actor=actor)
    return _refresh_status(request, actor=actor)


def _hold(request: DataSubjectRequest, reasons: list[str], *, actor: Actor) -> DataSubjectRequest:
    """The whole erasure waits, no step run: held, saying every reason once
    (audited when they change). Run again once they are settled."""
    with transaction.atomic():
        request = DataSubjectRequest.objects.select_for_update().get(pk=request.pk)
        reason = "\n".join(reasons)
        changed = (request.status, request.hold_reason) != (
            DataSubjectRequest.Status.HELD,
            reason,
        )
        request.status = DataSubjectRequest.Status.HELD
        request.hold_reason = reason
        fields = ["status", "hold_reason"]
        if request.handler_id is None and isinstance(actor, User):
            request.handler = actor
            fields.append("handler")
        request.save(update_fields=fields)
        if changed:
            audit.record(
                "accounts.dsr.held",
                category=audit.Category.DATA,
                actor=actor,
                target=request,
                data={"kind": request.kind, "reasons": len(reasons)},
            )
    return request


FINAL_POSITION = 90


def _waiting_for(request: DataSubjectRequest, step: ErasureStep) -> list[str]:
    unfinished = [
        other.name
        for other in request.steps.filter(position__lt=step.position).exclude(
            status=ErasureStep.Status.DONE
        )
        if not registry.get(other.name).provider
    ]
    if unfinished:
        return [f"Waits for: {', '.join(unfinished)}."]
    return []


def _plan(request: DataSubjectRequest, actor: AbstractBaseUser) -> None:
    """Create the steps once, saving each provider step's arguments now."""
    if request.steps.exists():
        return
    subject = subject_for(request.subject)
    identity = {"emails": sorted(subject.emails), "names": sorted(subject.names)}
    with transaction.atomic():
        for kind in registry:
            # Who the person was, for steps that run after the account forgot it.
            arguments = {**identity, "plan": kind.plan(subject) if kind.provider else None}
            ErasureStep.objects.create(
                request=request,
                name=kind.name,
                position=kind.position,
                arguments=json.dumps(arguments),
            )
        DataSubjectRequest.objects.filter(pk=request.pk).update(
            handler=request.handler or actor, status=DataSubjectRequest.Status.IN_PROGRESS
        )
        audit.record(
            "accounts.dsr.erasure_started",
            category=audit.Category.DATA,
            actor=actor,
            target=request,
            data={"subject": request.subject_id, "steps": [kind.name for kind in registry]},
        )


def _step_outcome(
    step: ErasureStep, status: str, outcome: str, *, actor: Actor, clear_arguments: bool = False
) -> None:
    step.status = status
    step.outcome = outcome[:1000]
    fields = ["status", "outcome", "attempts", "updated_at"]
    if clear_arguments:
        step.arguments = None
        fields.append("arguments")
    step.save(update_fields=fields)
    audit.record(
        f"accounts.dsr.step_{status}",
        category=audit.Category.DATA,
        actor=actor,
        target=step.request,
        data={"step": step.name, "attempt": step.attempts, "outcome": step.outcome},
    )


def _step_subject(step: ErasureStep) -> tuple[Subject, dict[str, Any] | None]:
    """The person as the step was planned, and the step's provider arguments."""
    arguments = json.loads(step.arguments) if step.arguments else {}
    subject = Subject(
        user=step.request.subject,
        emails=frozenset(arguments.get("emails", ())),
        names=frozenset(arguments.get("names", ())),
    )
    return subject, arguments.get("plan")


def _step_run_local(step: ErasureStep, kind: DataKind, *, actor: AbstractBaseUser) -> None:
    subject, plan = _step_subject(step)
    try:
        with transaction.atomic():
            step.attempts += 1
            result = kind.erase(subject, arguments=plan, actor=actor)
            done = result.done
            status = ErasureStep.Status.DONE if done else ErasureStep.Status.HELD
            _step_outcome(step, status, result.outcome, actor=actor, clear_arguments=done)
    except Exception as exc:
        logger.exception(
            "accounts.dsr.step_failed", extra={"step": step.pk, "step_name": step.name}
        )
        step.refresh_from_db()
        step.attempts += 1
        _step_outcome(step, ErasureStep.Status.FAILED, f"failed: {type(exc).__name__}", actor=actor)


def _step_queue(step: ErasureStep) -> None:
    with transaction.atomic():
        step.status = ErasureStep.Status.PENDING
        step.outcome = "queued"
        step.save(update_fields=["status", "outcome", "updated_at"])
        # The attempt count makes a re-run after a failure a new message.
        outbox.enqueue(STEP_TASK, step.pk, dedup_key=f"dsr-step:{step.pk}:{step.attempts}")


@shared_task(name=STEP_TASK)
def erasure_step_run(step_pk: int) -> str:
    """Run one provider step (the outbox publishes it after the commit). A provider
    that is down fails the step, recorded, and raises so the outbox tries again."""
    step = ErasureStep.objects.select_related("request__subject").get(pk=step_pk)
    if step.status == ErasureStep.Status.DONE:
        return step.status
    kind = registry.get(step.name)
    subject, plan = _step_subject(step)
    actor = f"accounts.dsr.{step.name}"
    step.attempts += 1
    try:
        result = kind.erase(subject, arguments=plan, actor=actor)
    except ProviderError as exc:
        _step_outcome(step, ErasureStep.Status.FAILED, f"failed: {exc}", actor=actor)
        _refresh_status(step.request, actor=actor)
        if not exc.permanent:
            raise
        return step.status
    _step_outcome(step, ErasureStep.Status.DONE, result.outcome, actor=actor, clear_arguments=True)
    _refresh_status(step.request, actor=actor)
    return step.status


def erasure_steps_retry(*, older_than_seconds: int = 3600, limit: int = 100) -> int:
    """Queue again the provider steps that failed a while ago (a provider down past
    the outbox's retries, Stripe still validating a redaction job): for beat. Returns
    how many were queued."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    steps = ErasureStep.objects.filter(
        status=ErasureStep.Status.FAILED,
        updated_at__lte=cutoff,
        request__status__in=DataSubjectRequest.OPEN_STATUSES,
    ).order_by("updated_at")[:limit]
    queued = 0
    for step in steps:
        if not registry.get(step.name).provider:
            continue
        holds = erasure_holds(request=step.request)
        if holds:  # a hold came up since: nothing runs until it is settled
            _hold(step.request, holds, actor="accounts.dsr.retry")
            continue
        _step_queue(step)
        queued += 1
    return queued


@shared_task(name="accounts.dsr.erasure_steps_retry_task")
def erasure_steps_retry_task() -> int:
    return erasure_steps_retry()


def _refresh_status(request: DataSubjectRequest, *, actor: Actor) -> DataSubjectRequest:
    with transaction.atomic():
        request = DataSubjectRequest.objects.select_for_update().get(pk=request.pk)
        steps = list(request.steps.all())
        held = [step for step in steps if step.status == ErasureStep.Status.HELD]
        if steps and all(step.status == ErasureStep.Status.DONE for step in steps):
            status = DataSubjectRequest.Status.COMPLETED
        elif held:
            status = DataSubjectRequest.Status.HELD
        else:
            status = DataSubjectRequest.Status.IN_PROGRESS
        request.hold_reason = "\n".join(f"{step.name}: {step.outcome}" for step in held)
        changed = status != request.status
        request.status = status
        if status == DataSubjectRequest.Status.COMPLETED:
            request.completed_at = request.completed_at or timezone.now()
        request.save(update_fields=["status", "hold_reason", "completed_at"])
        if changed and status == DataSubjectRequest.Status.COMPLETED:
            audit.record(
                "accounts.dsr.completed",
                category=audit.Category.DATA,
                actor=actor,
                target=request,
                data={"kind": request.kind, "steps": len(steps)},
            )
    return request


# --- What accounts itself holds -------------------------------------------------------


class AccountData(DataKind):
    """The account: anonymised (never deleted: it stands, as a pseudonym, for the
    person behind the payments and consents we must keep)."""

    def export(self, subject: Subject) -> Any:
        user = subject.user
        return {
            "id": user.pk,
            "email": user.email,
            "name": user.name,
            "time_zone": user.time_zone,
            "date_joined": user.date_joined,
            "last_login": user.last_login,
            "is_active": user.is_active,
            "builders": [membership.builder.name for membership in user.memberships.all()],
            "requests": [
                {
                    "id": request.pk,
                    "kind": request.kind,
                    "status": request.status,
                    "received_at": request.received_at,
                    "due_at": request.due_at,
                }
                for request in user.data_requests.all()
            ],
        }

    def erase(self, subject: Subject, *, arguments: dict[str, Any] | None, actor: Actor) -> Step:
        user = User.objects.select_for_update().get(pk=subject.user.pk)
        user.email = f"erased-{subject.pseudonym}@{ERASED_EMAIL_DOMAIN}"
        user.name = ""
        user.time_zone = ""
        user.is_active = False
        user.set_unusable_password()
        user.save()
        # Prepared exports and notes of their requests name them too.
        DataSubjectRequest.objects.filter(subject=user).update(
            export=None, notes="", export_prepared_at=None
        )
        return Step(f"account anonymised as {subject.pseudonym}, deactivated")


class SessionData(DataKind):
    """Signed-in sessions: ended (sessions name the account only, by id)."""

    def erase(self, subject: Subject, *, arguments: dict[str, Any] | None, actor: Actor) -> Step:
        ended = 0
        for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
            if str(session.get_decoded().get("_auth_user_id")) == str(subject.user.pk):
                session.delete()
                ended += 1
        return Step(f"{ended} session(s) ended")


class SignInData(DataKind):
    """Recent sign-ins (time, network, device), API tokens (never their hash) and the
    person's one-time links: copied on access; on erasure the sign-ins and links are
    deleted and the tokens deleted too (an anonymised account needs none)."""

    def export(self, subject: Subject) -> Any:
        user = subject.user
        return {
            "sign_ins": [
                {"at": s.at, "network": s.network, "device": s.device}
                for s in SignIn.objects.filter(user=user)
            ],
            "api_tokens": [
                {
                    "name": t.name,
                    "prefix": t.prefix,
                    "scopes": t.scopes,
                    "created_at": t.created_at,
                    "expires_at": t.expires_at,
                    "revoked_at": t.revoked_at,
                    "last_used_at": t.last_used_at,
                    "last_used_ip": t.last_used_ip,
                }
                for t in ApiToken.objects.filter(user=user)
            ],
        }

    def erase(self, subject: Subject, *, arguments: dict[str, Any] | None, actor: Actor) -> Step:
        user = subject.user
        sign_ins, _ = SignIn.objects.filter(user=user).delete()
        tokens, _ = ApiToken.objects.filter(user=user).delete()
        links, _ = OneTimeLink.objects.filter(user=user).delete()
        return Step(f"{sign_ins} sign-in(s), {tokens} API token(s) and {links} link(s) deleted")


class QueuedEmails(DataKind):
    """Emails in the outbox (sent ones are kept a day for looking into problems)."""

    def erase(self, subject: Subject, *, arguments: dict[str, Any] | None, actor: Actor) -> Step:
        pks = [
            message.pk
            for message in OutboxMessage.objects.filter(task="core.tasks.send_mail").iterator()
            if subject.mentioned_in(message.payload)
        ]
        deleted, _ = OutboxMessage.objects.filter(pk__in=pks).delete()
        return Step(f"{deleted} queued or sent email(s) removed")


class WebhookPayloads(DataKind):
    """Providers' event payloads (kept 24 hours after processing): purged now."""

    def _mentioning(self, subject: Subject) -> list[WebhookEvent]:
        return [
            event
            for event in WebhookEvent.objects.filter(payload__isnull=False).iterator()
            if subject.mentioned_in(event.payload)
        ]

    def holds(self, subject: Subject) -> list[str]:
        waiting = [e for e in self._mentioning(subject) if e.status not in WebhookEvent.FINAL]
        if waiting:
            return [f"{len(waiting)} provider event(s) about them are still being processed."]
        return []

    def erase(self, subject: Subject, *, arguments: dict[str, Any] | None, actor: Actor) -> Step:
        pks = [e.pk for e in self._mentioning(subject) if e.status in WebhookEvent.FINAL]
        purged = WebhookEvent.objects.filter(pk__in=pks).update(
            payload=None, payload_purged_at=timezone.now()
        )
        return Step(f"{purged} webhook payload(s) purged")


def _sealed_index_matches(indexes: list[str]) -> list[int]:
    """Entries whose chained bucket matches one of ``indexes`` and whose sealed part
    holds that exact index (accounts/signals.py)."""
    buckets = {blind_index_bucket(index) for index in indexes}
    matches = []
    candidates = AuditEntry.objects.filter(
        data__email_bucket__in=buckets, personal_data__isnull=False
    ).only("pk", "personal_data")
    for entry in candidates.iterator():
        values = json.loads(entry.personal_data or "{}").get("values", {})
        if values.get("email_index") in indexes:
            matches.append(entry.pk)
    return matches


class AuditTrail(DataKind):
    """Entries about the person: exported; their sealed personal part redacted (the
    chain still verifies, and the redaction is itself an entry naming who and why)."""

    def _about(self, subject: Subject) -> Q:
        """Entries about the person: their account, requests, bookings, payments, and
        the sign-in failures with their address."""
        targets = [("accounts.user", str(subject.user.pk))]
        targets += [
            ("accounts.datasubjectrequest", str(pk))
            for pk in subject.user.data_requests.values_list("pk", flat=True)
        ]
        for kind in registry:
            if kind is not self:
                targets += kind.audit_targets(subject)
        about = Q(pk__in=[])
        for target_type, target_id in set(targets):
            about |= Q(target_type=target_type, target_id=target_id)
        indexes = [index for email in subject.emails for index in blind_indexes(email)]
        if indexes:
            # Sign-in failures and lockouts: entries written before the bucket kept the
            # whole index; since, only its bucket is chained and the index is sealed.
            about |= Q(data__email_index__in=indexes)
            about |= Q(pk__in=_sealed_index_matches(indexes))
        return about

    def _entries(self, subject: Subject) -> Any:
        """Entries about the person, and what they did (as staff: to others too)."""
        did = Q(actor_type=audit.ActorType.USER, actor_id=str(subject.user.pk))
        return AuditEntry.objects.filter(self._about(subject) | did)

    def export(self, subject: Subject) -> Any:
        about = set(AuditEntry.objects.filter(self._about(subject)).values_list("pk", flat=True))
        rows = []
        for entry in self._entries(subject).order_by("sequence"):
            # What the person did to someone else: the fact, never that other person's
            # sealed data (a staff member's export holds no client's name or email).
            if entry.personal_data and entry.pk in about:
                personal = json.loads(entry.personal_data)["values"]
            elif entry.personal_data:
                personal = "[about someone else: left out]"
            else:
                personal = None
            rows.append(
                {
                    "sequence": entry.sequence,
                    "at": entry.created_at,
                    "action": entry.action,
                    "category": entry.category,
                    "by": "you" if entry.actor_id == str(subject.user.pk) else entry.actor_type,
                    "about": f"{entry.target_type} {entry.target_id}".strip(),
                    "data": entry.data,
                    "personal_data": personal,
                }
            )
        return rows

    def erase(self, subject: Subject, *, arguments: dict[str, Any] | None, actor: Actor) -> Step:
        # Only entries about the person: what a staff member did to a client keeps the
        # client's sealed part (theirs to erase, not this person's).
        about = AuditEntry.objects.filter(self._about(subject))
        entries = list(about.filter(personal_data__isnull=False))
        if not entries:
            return Step("no audit entry holds their personal data")
        redacted = redact_personal_data(
            entries=entries, actor=actor, reason=f"erasure of subject {subject.pseudonym}"
        )
        return Step(f"personal data redacted from {redacted} audit entr(y/ies)")


registry.register(SessionData("accounts.sessions", "Sessions", position=80))
registry.register(SignInData("accounts.sign_ins", "Sign-ins and API tokens", position=80))
registry.register(QueuedEmails("core.outbox", "Emails to you", position=80))
registry.register(WebhookPayloads("webhooks.payloads", "Provider event payloads", position=80))
registry.register(AccountData("accounts.account", "Your account", position=FINAL_POSITION))
registry.register(AuditTrail("audit.trail", "Audit entries about you", position=95))
