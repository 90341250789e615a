"""The sandbox's Stripe API at /sandbox/stripe/v1/: what stripe-python sends, Stripe's answers.

Keys: the configured STRIPE_API_KEY (``sk_test_``) may do everything; sandbox
``rk_test_`` keys only what their permissions grant (403 otherwise); live keys and
unknown keys are refused (401). Writes honour ``Idempotency-Key`` as Stripe does: the
same key with the same parameters replays the first answer, with other parameters it
is an ``idempotency_error``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from sandbox import db
from sandbox.stripe_sandbox import services
from sandbox.stripe_sandbox.models import IdempotencyRecord, RestrictedKey, StripeObject
from sandbox.stripe_sandbox.params import ParamError, decode
from sandbox.stripe_sandbox.services import ApiError, RequestContext

logger = logging.getLogger(__name__)

READ, WRITE = RestrictedKey.Access.READ, RestrictedKey.Access.WRITE


def _masked(key: str) -> str:
    return f"{key[:8]}{'*' * 12}{key[-4:]}" if len(key) > 16 else "****"


def authenticate(request: HttpRequest, resource: str, access: str) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(
            401,
            "You did not provide an API key. You need to provide your API key "
            "in the Authorization header, using Bearer auth.",
        )
    key = key.strip()
    if "_live_" in key:
        raise ApiError(
            401,
            "The Slotpay sandbox takes test keys only (sk_test_ or rk_test_); "
            f"the live key {_masked(key)} was refused.",
            code="livemode_key_refused",
        )
    if hmac.compare_digest(key.encode(), settings.STRIPE_API_KEY.encode()) and key.startswith(
        "sk_test_"
    ):
        return
    if key.startswith("rk_test_"):
        restricted = RestrictedKey.objects.filter(key=key).first()
        if restricted is not None:
            if restricted.allows(resource, access):
                return
            raise ApiError(
                403,
                f"The provided key '{_masked(key)}' does not have the required permissions for "
                f"this endpoint. Having the '{resource}' {access} permission would allow this "
                "request to continue.",
                code="insufficient_permissions",
            )
    raise ApiError(401, f"Invalid API Key provided: {_masked(key)}")


def _params(request: HttpRequest) -> dict[str, Any]:
    try:
        query = decode(request.META.get("QUERY_STRING", ""))
        body = decode(request.body.decode()) if request.body else {}
    except (ParamError, UnicodeDecodeError) as exc:
        raise ApiError(
            400, "Invalid request parameters.", param=getattr(exc, "param", None)
        ) from None
    return {**query, **body}


def _respond(status: int, body: dict[str, Any], request_id: str, **headers: str) -> JsonResponse:
    response = JsonResponse(body, status=status, json_dumps_params={"indent": 2})
    response["Request-Id"] = request_id
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def endpoint(resource: str, methods: dict[str, str]) -> Callable:
    """An API view for ``resource``; ``methods`` maps HTTP method → "read"/"write"."""

    def decorate(view: Callable[..., dict[str, Any]]) -> Callable:
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, **kwargs: Any) -> JsonResponse:
            request_id = f"req_{secrets.token_urlsafe(12).replace('-', 'x').replace('_', 'y')}"
            api_version = request.headers.get("Stripe-Version") or services.DEFAULT_API_VERSION
            try:
                access = methods.get(request.method or "")
                if access is None:
                    raise ApiError(
                        404,
                        f"Unrecognized request URL ({request.method}: {request.path}).",
                    )
                authenticate(request, resource, access)
                late = services.slowdown_take()
                if late:
                    time.sleep(late)  # a slow Stripe (services.slowdown_arm)
                params = _params(request)
                ctx = RequestContext(
                    request_id=request_id,
                    idempotency_key=request.headers.get("Idempotency-Key") or None,
                    api_version=api_version,
                    base_url=f"{request.scheme}://{request.get_host()}",
                )
                if request.method == "GET":
                    status, body, headers = 200, view(request, ctx, params, **kwargs), {}
                else:
                    status, body, headers = _write(request, ctx, params, view, kwargs)
            except ApiError as exc:
                status, body, headers = exc.status, {"error": exc.body}, {}
                if exc.status >= 500:
                    headers["Stripe_Should_Retry"] = "true"
            response = _respond(status, body, request_id, **headers)
            response["Stripe-Version"] = api_version
            logger.info(
                "sandbox.stripe.request",
                extra={"method": request.method, "path": request.path, "status": status},
            )
            return response

        return wrapper

    return decorate


def _digest(request: HttpRequest, params: dict[str, Any]) -> str:
    canonical = json.dumps([request.method, request.path, params], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


# A request still holding its key after this long died on the way: the key is free again.
IN_PROGRESS_TIMEOUT = timedelta(seconds=60)
IN_PROGRESS = 0  # the status of a record whose request is still running


def _write(
    request: HttpRequest,
    ctx: RequestContext,
    params: dict[str, Any],
    view: Callable[..., dict[str, Any]],
    kwargs: dict[str, Any],
) -> tuple[int, dict[str, Any], dict[str, str]]:
    key = ctx.idempotency_key
    if key is None:
        with db.atomic():
            return 200, view(request, ctx, params, **kwargs), {}
    if len(key) > 255:
        raise ApiError(400, "Idempotency keys can be up to 255 characters long.")
    digest = _digest(request, params)
    # The key is claimed (committed) before the request runs, as at Stripe: a second
    # request with it meanwhile is refused with a 409, not run a second time.
    try:
        with db.atomic():
            IdempotencyRecord.objects.filter(
                key=key,
                status_code=IN_PROGRESS,
                created_at__lt=timezone.now() - IN_PROGRESS_TIMEOUT,
            ).delete()
            record = IdempotencyRecord.objects.create(
                key=key,
                method=request.method,
                path=request.path,
                params_digest=digest,
                status_code=IN_PROGRESS,
                body={},
                request_id=ctx.request_id,
            )
    except IntegrityError:
        replay = _replay(key, request, digest)
        if replay is None:
            raise
        return replay
    try:
        with db.atomic():
            body = view(request, ctx, params, **kwargs)
            record.status_code, record.body = 200, body
            record.save(update_fields=["status_code", "body"])
    except BaseException:
        # Only results of requests that ran are kept: a refused request may be retried
        # with the same key (as at Stripe).
        with db.atomic():
            IdempotencyRecord.objects.filter(pk=record.pk).delete()
        raise
    return 200, body, {}


def _replay(
    key: str, request: HttpRequest, digest: str
) -> tuple[int, dict[str, Any], dict[str, str]] | None:
    record = IdempotencyRecord.objects.filter(key=key).first()
    if record is None:
        return None
    if (record.method, record.path, record.params_digest) != (
        request.method,
        request.path,
        digest,
    ):
        raise ApiError(
            400,
            "Keys for idempotent requests can only be used with the same parameters they were "
            f"first used with. Try using a key other than '{key}' if you meant to execute a "
            "different request.",
            type="idempotency_error",
        )
    if record.status_code == IN_PROGRESS:
        raise ApiError(
            409,
            "There is currently another in-progress request using this Idempotent Key "
            "(that probably means you submitted twice, and the other request is still going "
            f"through): {key}. Please try again later.",
            type="idempotency_error",
        )
    return (
        record.status_code,
        record.body,
        {"Idempotent_Replayed": "true", "Original_Request": record.request_id},
    )


# The expandable fields the sandbox knows, and the kind of object each one names.
EXPANDABLE = {
    "payment_intent": "payment_intent",
    "customer": "customer",
    "latest_charge": "charge",
    "charge": "charge",
}
# Stripe expands at most four levels deep (``data.invoice.subscription.default_source``).
MAX_EXPAND_DEPTH = 4


def _expand(
    body: dict[str, Any],
    params: dict[str, Any],
    session: Any = None,
    *,
    depth: int = MAX_EXPAND_DEPTH,
) -> dict:
    """``expand[]=payment_intent`` etc.: replace an id with its object. A dotted path
    expands recursively, as at Stripe (``payment_intent.latest_charge`` expands the
    PaymentIntent and, inside it, its latest charge), up to ``depth`` levels (a list's
    ``data.`` is one of Stripe's four). The stored objects are never changed: every
    level expanded is a copy."""
    expand = params.get("expand") or []
    if not isinstance(expand, list):
        raise ApiError(400, "Invalid array", param="expand")
    body = dict(body)
    for path in expand:
        parts = str(path).split(".")
        if len(parts) > depth:
            raise ApiError(
                400,
                f"You cannot expand more than {MAX_EXPAND_DEPTH} levels of a property ({path}).",
                param="expand",
            )
        _expand_path(body, parts, str(path), session)
    return body


def _expand_path(body: dict[str, Any], parts: list[str], path: str, session: Any) -> None:
    """Expand ``parts[0]`` of ``body`` in place, then the rest of the path inside it."""
    field, rest = parts[0], parts[1:]
    if field == "line_items" and session is not None and not rest:
        body["line_items"] = services.line_items_list(session)
        return
    if field == "refunds" and isinstance(body.get("refunds"), dict) and not rest:
        return  # a charge's refunds: this sandbox always includes the list
    if field not in EXPANDABLE or field not in body:
        raise ApiError(400, f"This property cannot be expanded ({path}).", param="expand")
    if isinstance(body[field], str):
        body[field] = services.get(body[field], EXPANDABLE[field]).data
    if rest and body[field] is not None:
        # A null field stays null, as at Stripe (a session not paid has no intent).
        body[field] = dict(body[field])
        _expand_path(body[field], rest, path, session)


# --- Lists --------------------------------------------------------------------------
#
# Stripe's list contract: newest first, ``limit`` 1 to 100 (default 10), cursors
# ``starting_after`` / ``ending_before`` naming an object of the list, ``created`` as a
# timestamp or a range (``created[gte]=...``), and an answer of ``{"object": "list",
# "data", "has_more", "url"}``. Filters on fields Stripe filters by are per list.


def _int_param(value: Any, param: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise ApiError(
            400,
            f"Invalid integer: {str(value)[:40]}",
            code="parameter_invalid_integer",
            param=param,
        ) from None


def _listing(
    kind: str,
    url: str,
    params: dict[str, Any],
    filters: dict[str, str],
    allowed: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """A page of ``kind`` objects; ``filters`` maps a parameter to the JSON field it
    matches (``{"charge": "charge"}``)."""
    unknown = set(params) - {"limit", "created", "starting_after", "ending_before", "expand"}
    unknown -= set(filters) | allowed
    if unknown:
        param = sorted(unknown)[0]
        raise ApiError(400, f"Received unknown parameter: {param}", param=param)
    limit = _int_param(params.get("limit", 10), "limit")
    if not 1 <= limit <= 100:
        raise ApiError(
            400,
            "This value must be greater than or equal to 1 and less than or equal to 100.",
            code="parameter_invalid_integer",
            param="limit",
        )
    queryset = StripeObject.objects.filter(object=kind)
    for param, field_name in filters.items():
        if params.get(param) not in (None, ""):
            queryset = queryset.filter(**{f"data__{field_name}": str(params[param])})
    created = params.get("created")
    if isinstance(created, dict):
        for op in ("gt", "gte", "lt", "lte"):
            if created.get(op) not in (None, ""):
                bound = _int_param(created[op], f"created[{op}]")
                queryset = queryset.filter(**{f"data__created__{op}": bound})
    elif created not in (None, ""):
        queryset = queryset.filter(data__created=_int_param(created, "created"))
    if params.get("starting_after"):
        anchor = services.get(str(params["starting_after"]), kind)
        queryset = queryset.filter(seq__lt=anchor.seq)
    if params.get("ending_before"):
        anchor = services.get(str(params["ending_before"]), kind)
        page = list(queryset.filter(seq__gt=anchor.seq).order_by("seq")[: limit + 1])
        has_more = len(page) > limit
        rows = list(reversed(page[:limit]))
    else:
        rows = list(queryset.order_by("-seq")[: limit + 1])
        has_more = len(rows) > limit
        rows = rows[:limit]
    # A list expands its items' fields as ``data.<field>``.
    expand = params.get("expand") or []
    if not isinstance(expand, list) or not all(str(f).startswith("data.") for f in expand):
        raise ApiError(400, "Expand a list's items as data.<field>.", param="expand")
    item_expand = {"expand": [str(f).removeprefix("data.") for f in expand]}
    return {
        "object": "list",
        "data": [_expand(row.data, item_expand, depth=MAX_EXPAND_DEPTH - 1) for row in rows],
        "has_more": has_more,
        "url": url,
    }


# --- Endpoints ----------------------------------------------------------------------


@endpoint("checkout_sessions", {"POST": WRITE, "GET": READ})
def checkout_sessions(request: HttpRequest, ctx: RequestContext, params: dict) -> dict:
    if request.method == "GET":
        return _listing(
            "checkout.session",
            "/v1/checkout/sessions",
            params,
            {
                "status": "status",
                "payment_intent": "payment_intent",
                "customer": "customer",
                "payment_link": "payment_link",
            },
        )
    expand = params.pop("expand", None)
    body = services.session_create(ctx, params)
    if not expand:
        return body
    return _expand(body, {"expand": expand}, services.get(body["id"], "checkout.session"))


@endpoint("checkout_sessions", {"GET": READ})
def checkout_session(request: HttpRequest, ctx: RequestContext, params: dict, id: str) -> dict:
    session = services.session_retrieve(id)
    return _expand(session.data, params, session)


@endpoint("checkout_sessions", {"POST": WRITE})
def checkout_session_expire(
    request: HttpRequest,
    ctx: RequestContext,
    params: dict,
    id: str,
) -> dict:
    return services.session_expire(ctx, id)


@endpoint("checkout_sessions", {"GET": READ})
def checkout_session_line_items(
    request: HttpRequest,
    ctx: RequestContext,
    params: dict,
    id: str,
) -> dict:
    return services.line_items_list(services.session_retrieve(id))


@endpoint("payment_intents", {"GET": READ})
def payment_intent(request: HttpRequest, ctx: RequestContext, params: dict, id: str) -> dict:
    return _expand(services.get(id, "payment_intent").data, params)


@endpoint("charges", {"GET": READ})
def charge(request: HttpRequest, ctx: RequestContext, params: dict, id: str) -> dict:
    return _expand(services.get(id, "charge").data, params)


@endpoint("refunds", {"POST": WRITE, "GET": READ})
def refunds(request: HttpRequest, ctx: RequestContext, params: dict) -> dict:
    if request.method == "GET":
        return _listing(
            "refund",
            "/v1/refunds",
            params,
            {"charge": "charge", "payment_intent": "payment_intent"},
        )
    params.pop("expand", None)
    return services.refund_create(ctx, params)


@endpoint("refunds", {"GET": READ})
def refund(request: HttpRequest, ctx: RequestContext, params: dict, id: str) -> dict:
    return _expand(services.get(id, "refund").data, params)


@endpoint("customers", {"GET": READ, "DELETE": WRITE})
def customer(request: HttpRequest, ctx: RequestContext, params: dict, id: str) -> dict:
    if request.method == "DELETE":
        return services.customer_delete(id, ctx=ctx)
    return services.get(id, "customer").data


@endpoint("privacy_redaction_jobs", {"POST": WRITE})
def redaction_jobs(request: HttpRequest, ctx: RequestContext, params: dict) -> dict:
    return services.redaction_job_create(ctx, params)


@endpoint("privacy_redaction_jobs", {"GET": READ})
def redaction_job(request: HttpRequest, ctx: RequestContext, params: dict, id: str) -> dict:
    return services.get(id, "privacy.redaction_job").data


@endpoint("privacy_redaction_jobs", {"POST": WRITE})
def redaction_job_run(request: HttpRequest, ctx: RequestContext, params: dict, id: str) -> dict:
    return services.redaction_job_run(id)


@endpoint("disputes", {"GET": READ})
def dispute(request: HttpRequest, ctx: RequestContext, params: dict, id: str) -> dict:
    return services.get(id, "dispute").data


@endpoint("events", {"GET": READ})
def events(request: HttpRequest, ctx: RequestContext, params: dict) -> dict:
    return services.events_list(params)


@endpoint("events", {"GET": READ})
def event(request: HttpRequest, ctx: RequestContext, params: dict, id: str) -> dict:
    return services.get(id, "event").data


@endpoint("unknown", {})
def unrecognized(request: HttpRequest, ctx: RequestContext, params: dict, rest: str) -> dict:
    raise AssertionError("unreachable: no method is allowed")  # pragma: no cover
