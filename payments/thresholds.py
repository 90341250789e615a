"""When a refund from the back-office needs a second Finance member's approval.

``settings.REFUND_APPROVAL_THRESHOLD`` is a comma list of ``<currency>=<minor units>``
entries and at most one ``<percent>%`` share of the payment, e.g.
``"eur=10000,jpy=15000,50%"``. A refund needs approval when it exceeds any entry that
applies to it. A currency with no entry of its own, when no share is set either, has
no limit anyone chose: every refund in it needs approval (fail closed).

A malformed value is a system check error (payments/checks.py), so the site does not
start with a threshold nobody meant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.conf import settings

_CURRENCY = re.compile(r"^[a-z]{3}$")
_MINOR = re.compile(r"^[0-9]{1,15}$")
_PERCENT = re.compile(r"^[0-9]{1,3}(\.[0-9]{1,2})?%$")


class ThresholdError(ValueError):
    pass


@dataclass(frozen=True)
class Threshold:
    per_currency: dict[str, int] = field(default_factory=dict)
    percent: Decimal | None = None

    @classmethod
    def parse(cls, value: str) -> Threshold:
        """Raises ThresholdError naming the entry at fault."""
        per_currency: dict[str, int] = {}
        percent: Decimal | None = None
        entries = [entry.strip() for entry in value.split(",")]
        if not any(entries):
            raise ThresholdError("it is empty: give at least one <currency>=<minor units>")
        for entry in entries:
            if not entry:
                raise ThresholdError("it has an empty entry (two commas in a row?)")
            if entry.endswith("%"):
                if percent is not None:
                    raise ThresholdError(f"{entry!r}: only one percentage may be given")
                if not _PERCENT.match(entry):
                    raise ThresholdError(f"{entry!r}: a share is written like 50% or 12.5%")
                try:
                    percent = Decimal(entry[:-1])
                except InvalidOperation as exc:  # pragma: no cover (the pattern holds)
                    raise ThresholdError(f"{entry!r} is not a number") from exc
                if not 0 <= percent <= 100:
                    raise ThresholdError(f"{entry!r}: a share is between 0% and 100%")
                continue
            currency, equals, amount = (part.strip() for part in entry.partition("="))
            if not equals or not _CURRENCY.match(currency) or not _MINOR.match(amount):
                raise ThresholdError(
                    f"{entry!r}: write <lowercase currency code>=<minor units>, like eur=10000"
                )
            if currency in per_currency:
                raise ThresholdError(f"{currency!r} is given twice")
            per_currency[currency] = int(amount)
        return cls(per_currency, percent)

    def exceeded_by(self, *, amount: int, currency: str, paid: int) -> bool:
        """Whether refunding ``amount`` minor units of a payment of ``paid`` needs approval."""
        limit = self.per_currency.get(currency.lower())
        if limit is None and self.percent is None:
            return True
        if limit is not None and amount > limit:
            return True
        return self.percent is not None and amount * 100 > paid * self.percent


def current() -> Threshold:
    return Threshold.parse(settings.REFUND_APPROVAL_THRESHOLD)
