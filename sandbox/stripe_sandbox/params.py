"""Stripe's form encoding back into nested data.

stripe-python sends ``line_items[0][price_data][unit_amount]=2500``,
``metadata[booking]=b_1``, ``expand[0]=payment_intent`` (older clients ``expand[]=``).
Objects whose keys are all indices become lists, as Stripe reads them.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_PART = re.compile(r"\[([^\[\]]*)\]")


class ParamError(ValueError):
    def __init__(self, param: str) -> None:
        super().__init__(f"Invalid parameter: {param}")
        self.param = param


def _path(name: str) -> list[str]:
    head, _, rest = name.partition("[")
    if not head:
        raise ParamError(name)
    if not rest:
        return [head]
    rest = "[" + rest
    parts = _PART.findall(rest)
    if "".join(f"[{p}]" for p in parts) != rest:
        raise ParamError(name)
    return [head, *parts]


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    converted = {key: _listify(item) for key, item in value.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def decode(query: str) -> dict[str, Any]:
    """``a[b][0]=x&c=y`` → ``{"a": {"b": ["x"]}, "c": "y"}``; raises ParamError."""
    root: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True, max_num_fields=2000):
        path = _path(name)
        node = root
        for depth in range(len(path) - 1):
            part = path[depth]
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ParamError(name)
            node = child
            # ``expand[]=a&expand[]=b``: append with the next free index.
            if path[depth + 1] == "":
                path[depth + 1] = str(len(node))
        last = path[-1]
        if isinstance(node.get(last), dict):
            raise ParamError(name)
        node[last] = value
    return _listify(root)
