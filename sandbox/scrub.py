"""Forgetting a person inside the sandbox, as the providers do on a deletion request:
every string holding one of their values is replaced, in stored JSON and in the
webhook deliveries (the providers' event logs)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sandbox.models import Delivery


def without(data: Any, values: Iterable[str], mask: str) -> Any:
    """``data`` (JSON) with every string that contains one of ``values`` (any case)
    replaced by ``mask``."""
    folded = [value.casefold() for value in values if value]
    return _without(data, folded, mask)


def _without(data: Any, folded: list[str], mask: str) -> Any:
    if isinstance(data, dict):
        return {key: _without(value, folded, mask) for key, value in data.items()}
    if isinstance(data, list):
        return [_without(item, folded, mask) for item in data]
    if isinstance(data, str) and any(value in data.casefold() for value in folded):
        return mask
    return data


def deliveries_scrub(*, provider: str, values: set[str], mask: str) -> int:
    """Scrub the values from this provider's webhook deliveries; returns how many changed."""
    if not values:
        return 0
    changed = 0
    for item in Delivery.objects.filter(provider=provider):
        body = json.loads(item.body)
        scrubbed = without(body, values, mask)
        if scrubbed != body:
            item.body = json.dumps(scrubbed)
            item.save(update_fields=["body"])
            changed += 1
    return changed
