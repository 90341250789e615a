"""Money in integer minor units, as Stripe counts them, and shown by locale with Babel.

Stripe's minor units are not always ISO 4217's: it treats these currencies as having
no decimals (an amount of 500 JPY is ``500``) and these as having three (5.000 KWD is
``5000``, and the last digit must be 0). Everything else has two.
https://docs.stripe.com/currencies#zero-decimal
"""

from __future__ import annotations

from decimal import Decimal

from babel.numbers import format_currency
from django.core.exceptions import ValidationError

ZERO_DECIMAL = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()  # noqa: SIM905
)
THREE_DECIMAL = frozenset(("bhd", "jod", "kwd", "omr", "tnd"))


def decimals(currency: str) -> int:
    code = currency.lower()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def to_decimal(amount: int, currency: str) -> Decimal:
    return Decimal(amount).scaleb(-decimals(currency))


def format_money(amount: int, currency: str, locale: str = "en") -> str:
    """``1999, "eur"`` → ``€19.99`` (en) or ``19,99 €`` (de); ``500, "jpy"`` → ``¥500``.

    The value comes from Stripe's minor units; Babel shows it with the locale's
    symbol, separators and ISO's number of digits."""
    return format_currency(to_decimal(amount, currency), currency.upper(), locale=locale)


def validate_amount(amount: int, currency: str) -> None:
    """Stripe's rule for three-decimal currencies: the amount must end in 0."""
    if currency.lower() in THREE_DECIMAL and amount % 10:
        raise ValidationError(
            f"{currency.upper()} amounts must be a multiple of 10 minor units (Stripe rounds "
            "three-decimal currencies to two)."
        )


# Far more than any payment: a longer number is a typo or an attack, refused as such.
MAX_DIGITS = 12


def parse_amount(text: str, currency: str) -> int:
    """What a person typed, in the currency's units (``"12.50"`` EUR, ``"1500"`` JPY),
    as minor units; ValidationError with a message for them otherwise.

    Only ASCII digits with at most the currency's decimals: no sign, no exponent, no
    separators, no other script's digits (``int()`` would take ``"١٢"``)."""
    value = text.strip()
    places = decimals(currency)
    whole, dot, fraction = value.partition(".")
    if not value or "\x00" in value or not value.isascii():
        raise ValidationError("Enter an amount using the digits 0-9, like 12.50.")
    if not whole.isdigit() or (dot and not fraction.isdigit()):
        raise ValidationError("Enter a positive amount using the digits 0-9, like 12.50.")
    if len(fraction) > places:
        raise ValidationError(
            f"{currency.upper()} amounts have no decimals."
            if not places
            else f"{currency.upper()} amounts have at most {places} decimals."
        )
    if len(whole.lstrip("0")) > MAX_DIGITS:
        raise ValidationError("That amount is far too large.")
    minor = int(whole + fraction.ljust(places, "0"))
    if minor <= 0:
        raise ValidationError("The amount must be more than zero.")
    validate_amount(minor, currency)
    return minor
