"""Masking personal data and secrets out of text: logs, Sentry events, audit data.

This module imports nothing from Django models, so logging can load it while
settings are still being read.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

MASK = "[redacted]"

# "%40" too: query strings (Django logs the request's full path) carry it encoded.
_EMAIL = re.compile(r"(?<![\w.+-])([\w.+-]{1,64})(?:@|%40)([\w-]+(?:\.[\w-]+)+)")
# 13 to 19 digits, optionally grouped by spaces or dashes: the shape of a card number.
# Card numbers start with 2-6 (Mastercard, Amex/Diners/JCB, Visa, Mastercard, Discover/
# UnionPay); millisecond timestamps (13 digits, "17...") would otherwise pass the Luhn
# check one time in ten.
_CARD = re.compile(r"(?<!\d)[2-6](?:[ -]?\d){12,18}(?!\d)")
# A UUID's digit groups ("...-a585-4986-8295-59ed...") can pass for a card number one
# time in ten; booking references and provider ids are UUIDs, so they are left whole.
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_SECRETS = [
    re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{8,}"),
    re.compile(r"\bwhsec_[A-Za-z0-9+/=]{8,}"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}"),
    # Slotpay API tokens (accounts.tokens): the prefix alone may stay, the rest not.
    re.compile(r"\bslp_[0-9A-Za-z]{8}_[0-9A-Za-z]{20,}"),
    # Fernet tokens (our ciphertext) and keys are not for logs either.
    re.compile(r"\bgAAAAA[A-Za-z0-9_=-]{20,}"),
]
_ASSIGNMENT = re.compile(
    r"(?i)\b(password|passwd|secret|token|api[_-]?key|authorization|signature|"
    r"signing[_-]?key|encryption[_-]?key)(\"?\s*[=:]\s*\"?)([^\s\",;&]+)"
)
# The webhook endpoints' last segment is a secret (STRIPE_/CALENDLY_WEBHOOK_PATH_TOKEN).
_WEBHOOK_PATH = re.compile(r"(/webhooks/(?:stripe|calendly)/)[^/?#\s\"']+")
# A one-time link's secret (accounts/links.py: 32 bytes, 43 URL-safe characters) as a
# path segment: verification, reset, invitation, recovery and claim links alike.
_LINK_SECRET = re.compile(r"(?<=/)[A-Za-z0-9_-]{43}(?=[/?#\s\"']|$)")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/\s@]+:)([^@\s/]+)@")

_SENSITIVE_KEYS = re.compile(
    r"(?i)(password|passwd|secret|token|api[_-]?key|authorization|cookie|signature|"
    r"card|cvc|cvv|iban|dsn)"
)


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[card]" if _luhn_valid(digits) else match.group(0)


def mask_email(address: str) -> str:
    """``jane.doe@example.com`` -> ``j***@e***.com``: enough to tell cases apart."""
    local, _, domain = address.partition("@")
    if not domain:
        return MASK
    host, _, tld = domain.rpartition(".")
    return f"{local[:1]}***@{(host or tld)[:1]}***.{tld if host else ''}".rstrip(".")


def scrub_text(text: str) -> str:
    """Mask emails, card-like numbers and secrets in free text; percent-encoded ones
    too (a request line's path, ``/x/someone%40example.com/``): where decoding reveals
    something to mask, the decoded text is what is kept, masked."""
    scrubbed = _scrub_plain(text)
    # Decoding costs a second pass: only where something may be encoded (not the "+" of
    # every "+00:00" a log line carries).
    if "%" in text or _PLUS_JOINED_DIGITS.search(text):
        decoded = unquote_plus(text)
        masked = _scrub_plain(decoded)
        if masked != decoded:
            return masked
    return scrubbed


_PLUS_JOINED_DIGITS = re.compile(r"\d{4}\+\d{4}")


def _scrub_plain(text: str) -> str:
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    text = _WEBHOOK_PATH.sub(lambda m: f"{m.group(1)}{MASK}", text)
    text = _LINK_SECRET.sub(MASK, text)
    for pattern in _SECRETS:
        text = pattern.sub(MASK, text)
    text = _ASSIGNMENT.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _EMAIL.sub(lambda m: mask_email(f"{m.group(1)}@{m.group(2)}"), text)
    return _outside_uuids(text, lambda part: _CARD.sub(_mask_card, part))


def _outside_uuids(text: str, mask: Callable[[str], str]) -> str:
    """``mask`` applied to the text between UUIDs, the UUIDs kept as they are."""
    if "-" not in text:
        return mask(text)
    parts, end = [], 0
    for found in _UUID.finditer(text):
        parts += [mask(text[end : found.start()]), found.group(0)]
        end = found.end()
    parts.append(mask(text[end:]))
    return "".join(parts)


# A path or URL and its query string: "/bookings/scheduled/?invitee_full_name=...". The
# query runs to whitespace, a double quote, an angle bracket or a fragment; a single
# quote is taken in (it may be part of a value) at the cost of a closing quote.
_URL_QUERY = re.compile(
    r"(?P<path>(?:\b[a-z][a-z0-9+.-]*://[^\s/?#\"'<>]+|/)[^\s?#\"'<>]*)\?(?P<query>[^\s#\"<>]*)",
    re.IGNORECASE,
)
# A parameter name worth keeping: it says what was sent. Anything else may be data.
_PARAMETER_NAME = re.compile(r"[A-Za-z_][\w.\-\[\]]{0,63}")


def redact_query_string(query: str) -> str:
    """``a=1&b=2`` -> ``a=[redacted]&b=[redacted]``: the names stay, the values go.

    Calendly's redirect carries the invitee's name, email and answers as values. A
    part without ``=``, or a name that does not look like one, is redacted whole.
    """
    parts = []
    for part in filter(None, re.split(r"[&;]", query)):
        name, equals, _ = part.partition("=")
        parts.append(f"{name}={MASK}" if equals and _PARAMETER_NAME.fullmatch(name) else MASK)
    return "&".join(parts)


def redact_queries(text: str) -> str:
    """Every path or URL in ``text`` keeps its path and loses its query's values."""
    return _URL_QUERY.sub(lambda m: f"{m['path']}?{redact_query_string(m['query'])}", text)


def request_repr(request: Any) -> str:
    """What ``repr(request)`` prints, without the query's values."""
    path, _, query = request.get_full_path().partition("?")
    if query:
        path = f"{path}?{redact_query_string(query)}"
    return f"<{type(request).__name__}: {request.method} {path!r}>"


def scrub(value: Any, *, key: str | None = None) -> Any:
    """Scrub a JSON-like structure: sensitive keys lose their value, text is masked."""
    if key is not None and _SENSITIVE_KEYS.search(key) and value not in (None, "", [], {}):
        return MASK
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value if scrub_text(str(value)) == str(value) else "[card]"
    if isinstance(value, dict):
        return {scrub_text(str(k)): scrub(v, key=str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(item) for item in value]
    return value


_STANDARD_RECORD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_JSON_TYPES = (str, int, float, bool, type(None), dict, list, tuple)


class MaskingFilter(logging.Filter):
    """Logging filter: the formatted message, the traceback and extras get scrubbed."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = scrub_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub_text(record.exc_text)
            # Formatters use exc_text when exc_info is gone; the JSON formatter would
            # otherwise format the exception again, unmasked.
            record.exc_info = None
        for name, value in list(vars(record).items()):
            if name not in _STANDARD_RECORD_ATTRS and name != "request_id":
                # What a formatter would print (the JSON one uses str()), masked:
                # Django's ``request`` extra prints the full path with its query.
                printable = value if isinstance(value, _JSON_TYPES) else str(value)
                setattr(record, name, scrub(printable, key=name))
        return True
