from __future__ import annotations

import contextlib
import logging
from collections.abc import MutableMapping
from typing import Any

from django.http import HttpRequest

from core.http import current_request_id
from core.masking import redact_queries, redact_query_string, request_repr

_STANDARD_RECORD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# gunicorn's access-log atoms that hold a bare query string, with no "?" to find it by.
_QUERY_ATOMS = {"q", "{query_string}e"}


class RequestContextFilter(logging.Filter):
    """Put the current request id (or "-") on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            # Django logs 4xx/5xx responses ("django.request") after the middleware has
            # returned, with the request attached: take the id from there.
            record.request_id = (
                current_request_id.get()
                or getattr(getattr(record, "request", None), "request_id", None)
                or "-"
            )
        return True


def _redact(value: Any) -> Any:
    if isinstance(value, HttpRequest):
        return request_repr(value)
    if isinstance(value, str):
        return redact_queries(value)
    if isinstance(value, dict):
        return {key: _redact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(item) for item in value]
    if isinstance(value, int | float | bool | type(None)):
        return value
    return redact_queries(str(value))  # what a formatter would print


class ForbiddenFilter(logging.Filter):
    """A refused request (403) is one line, not a traceback: a permission check
    that worked is not an error, and 275 tracebacks from staff trying pages they may
    not open would bury the ones that are."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) == 403:
            record.exc_info = None
            record.exc_text = None
        return True


# What a request alone decides, and is refused for (400). Others of django.security
# (a tampered session, a file path, a redirect) stay errors with their traceback.
_REFUSED_AS_SUSPICIOUS = {
    f"django.security.{name}"
    for name in (
        "DisallowedModelAdminLookup",
        "DisallowedModelAdminToField",
        "DisallowedHost",
        "RequestDataTooBig",
        "TooManyFieldsSent",
        "TooManyFilesSent",
    )
}


class SuspiciousRequestFilter(logging.Filter):
    """A request Django refused for what it asked (answered 400: a lookup or
    ``_to_field`` the admin does not allow, a bad Host, too many fields) is a WARNING of
    one line. The person who sent it chose its text: at ERROR with a traceback, anyone
    signed in to the admin could bury real errors (each is an alert where ERROR is)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.name in _REFUSED_AS_SUSPICIOUS
            and getattr(record, "status_code", None) == 400
            and record.levelno > logging.WARNING
        ):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = None
            record.exc_text = None
        return True


# Line breaks and other control characters, as they would be written in Python.
_CONTROL = {code: f"\\x{code:02x}" for code in [*range(0x20), 0x7F, 0x85] if chr(code) != "\t"} | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
    ord("\\"): "\\\\",  # a typed "\\n" is then told from an escaped line break
}


class OneLineFilter(logging.Filter):
    """A record's message on one line: line breaks and control characters escaped.

    Messages carry text a request chose (a path, a refused field's name), and a line
    break in it would start what reads as a record of its own in the text format
    (``?_to_field=%0d%0a...``). Tracebacks stay as they are, after the message.
    Runs after QueryStringFilter, which leaves the message formatted in ``msg``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg if isinstance(record.msg, str) else str(record.msg)
        if record.args:
            with contextlib.suppress(TypeError, ValueError, KeyError):
                message = record.getMessage()
            record.args = None
        record.msg = message.translate(_CONTROL)
        return True


class QueryStringFilter(logging.Filter):
    """Query values out of every record: message, arguments, extras and traceback.

    Calendly's redirect to /bookings/scheduled/ carries the invitee's name, email and
    free-text answers as query values, and request logging prints whole paths: Django
    attaches the request to django.request and django.security records (its repr is
    the full path), runserver (django.server) and gunicorn (gunicorn.access) log the
    request line, and gunicorn the referer and any header its format names. Paths and
    parameter names stay, so a failing redirect can still be told apart.

    Runs before MaskingFilter, after RequestContextFilter (which reads the request).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, MutableMapping):
            # gunicorn's access log formats its atoms by name; missing ones print "-",
            # so the mapping is changed in place rather than replaced.
            for name in list(record.args):
                value = record.args[name]
                if name in _QUERY_ATOMS and isinstance(value, str):
                    record.args[name] = redact_query_string(value)
                elif isinstance(value, str):
                    record.args[name] = redact_queries(value)
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):
            message = str(record.msg)
        record.msg = redact_queries(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_queries(record.exc_text)
            record.exc_info = None  # or a formatter would format it again, unredacted
        for name, value in list(vars(record).items()):
            if name not in _STANDARD_RECORD_ATTRS and name != "request_id":
                setattr(record, name, _redact(value))
        return True
