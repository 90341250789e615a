"""Sentry, when SENTRY_DSN is set: no default PII, and every event scrubbed."""

from __future__ import annotations

from typing import Any

import sentry_sdk
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.types import Event

from core.masking import redact_queries, scrub

_DROPPED_HEADERS = {"authorization", "cookie", "stripe-signature", "calendly-webhook-signature"}
# Where the SDK puts a bare query string: the request's, and an outgoing HTTP call's
# (breadcrumbs and spans). Calendly's redirect carries the invitee's name, email and
# answers there; our Calendly client asks for invitees by email.
_QUERY_KEYS = {"query_string", "http.query"}


def _without_query_values(value: Any) -> Any:
    if isinstance(value, str):
        return redact_queries(value)
    if isinstance(value, dict):
        return {
            key: _without_query_values(item)
            for key, item in value.items()
            if key not in _QUERY_KEYS
        }
    if isinstance(value, list):
        return [_without_query_values(item) for item in value]
    return value


def before_send(event: Event, hint: dict[str, Any]) -> Event:
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("cookies", None)
        request.pop("data", None)
        url = request.get("url")
        if isinstance(url, str):
            request["url"] = url.partition("?")[0]
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {
                name: value
                for name, value in headers.items()
                if name.lower() not in _DROPPED_HEADERS
            }
    event.pop("user", None)
    # Then every URL anywhere (a Referer header, a log message, an exception's text)
    # keeps its path and parameter names only.
    scrubbed: Event = scrub(_without_query_values(event))
    return scrubbed


def init_sentry(*, dsn: str, environment: str) -> None:
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        # No send_default_pii (deprecated in sentry-sdk 2.75, a DeprecationWarning) and
        # no data_collection (it turns the SDK's own scrubber off): unset, the SDK
        # collects no user identity and scrubs cookies and sensitive headers itself.
        max_request_body_size="never",
        include_local_variables=False,
        before_send=before_send,
        before_send_transaction=before_send,
        integrations=[DjangoIntegration(), CeleryIntegration()],
    )
