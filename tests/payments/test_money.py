"""Integer minor units as Stripe counts them, shown by locale."""

import pytest
from django.core.exceptions import ValidationError

from payments.money import decimals, format_money, to_decimal, validate_amount


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "shown"),
    [
        (1999, "eur", "en", "€19.99"),
        (1999, "eur", "de", "19,99\xa0€"),
        (5000, "jpy", "en", "¥5,000"),
        (5000, "jpy", "ja", "￥5,000"),
        (5250, "kwd", "en", "KWD5.250"),
        (100000, "usd", "en", "$1,000.00"),
    ],
)
def test_amounts_are_shown_by_locale(amount, currency, locale, shown) -> None:
    assert format_money(amount, currency, locale) == shown


def test_minor_units_follow_stripe() -> None:
    assert [decimals(c) for c in ("EUR", "jpy", "KRW", "kwd", "bhd")] == [2, 0, 0, 3, 3]
    assert str(to_decimal(5250, "kwd")) == "5.250"
    assert str(to_decimal(5000, "jpy")) == "5000"


def test_three_decimal_amounts_must_end_in_zero() -> None:
    validate_amount(5250, "kwd")
    validate_amount(5001, "eur")
    with pytest.raises(ValidationError, match="multiple of 10"):
        validate_amount(5251, "KWD")


@pytest.mark.django_db
def test_an_event_type_refuses_a_price_stripe_would_refuse(owner) -> None:
    from tests.bookings.factories import make_event_type

    event_type = make_event_type(owner.builders.get(), price_amount=5255, currency="kwd")
    with pytest.raises(ValidationError) as refused:
        event_type.full_clean()
    assert "price_amount" in refused.value.message_dict
