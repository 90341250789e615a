"""The tamper-evident audit trail.

``audit.record(...)`` is the one way to write an entry; see audit/services.py.
"""

from typing import Any

from audit.categories import ActorType, Category


def record(action: str, **kwargs: Any) -> Any:
    from audit.services import record as _record

    return _record(action, **kwargs)


__all__ = ["ActorType", "Category", "record"]
