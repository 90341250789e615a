"""Strict validation of the parts of a provider's envelope that we rely on.

A spec is a dict of key to rule: a type, a :class:`Match` (a string matching a
pattern), a nested spec, or any of these wrapped in :class:`Optional`. Keys the
spec does not name are ignored (providers add fields); a required key that is
missing, null or of the wrong type fails with the path to it, e.g.
``data.object.id: missing``. Each provider's specs live with its app, which derives
the event type and our dedup key from a valid envelope (``webhooks.providers``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class SchemaError(ValueError):
    """The body is JSON but not an event we can trust the shape of."""


@dataclass(frozen=True)
class Match:
    pattern: str

    def check(self, value: Any) -> bool:
        return isinstance(value, str) and re.fullmatch(self.pattern, value) is not None


@dataclass(frozen=True)
class Optional:
    rule: Any


class _Timestamp:
    """An ISO 8601 time with a zone (Calendly's ``2020-11-23T17:51:19.000000Z``)."""

    @staticmethod
    def check(value: Any) -> bool:
        if not isinstance(value, str):
            return False
        try:
            return datetime.fromisoformat(value).tzinfo is not None
        except ValueError:
            return False


Timestamp = _Timestamp()


def validate(spec: Mapping[str, Any], value: Any, path: str = "") -> None:
    if not isinstance(value, dict):
        raise SchemaError(f"{path or 'body'}: expected an object")
    for key, declared in spec.items():
        where = f"{path}.{key}" if path else key
        optional = isinstance(declared, Optional)
        rule = declared.rule if optional else declared
        item = value.get(key)
        if item is None:
            if optional:
                continue
            raise SchemaError(f"{where}: missing")
        if isinstance(rule, dict):
            validate(rule, item, where)
        elif isinstance(rule, type):
            # bool is an int in Python; a JSON true is not a timestamp.
            if not isinstance(item, rule) or (rule is int and isinstance(item, bool)):
                raise SchemaError(f"{where}: expected {rule.__name__}")
        elif not rule.check(item):
            raise SchemaError(f"{where}: unexpected value")


@dataclass(frozen=True)
class Envelope:
    """What a provider's envelope gives the pipeline (``webhooks.providers``)."""

    event_id: str  # the dedup key: the provider's event id, or one derived from the event
    event_type: str
