"""audit.chain's canonical text: the fast leaf encoder and the shared C encoder write
byte for byte what json.dumps with the canonical options writes, so that every hash
already in a chain still verifies."""

import datetime as dt
import hashlib
import json
import uuid
from decimal import Decimal

import pytest

from audit import chain
from audit.categories import Category
from audit.models import Stream


def _reference_text(value):
    """The canonical text as chain.canonical wrote it before it had its own encoder."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _reference_leaf(values):
    payload = dict(zip(chain.LEAF_FIELDS, values, strict=True))
    payload["created_at"] = chain._utc_text(payload["created_at"])
    return hashlib.sha256(_reference_text(payload).encode()).hexdigest()


TRICKY_DATA = [
    {},
    {"number": 17},
    {"b": 1, "a": 2, "A": 3, "é": 4, "ä": 5, "10": 6, "9": 7, "": 8},
    {"text": "Zoë «quoted» \"double\" 'single' back\\slash / slash"},
    {"control": "tab\t newline\n return\r nul\x00 bell\x07 del\x7f"},
    {"unicode": "日本語 Ελληνικά emoji 🎉 surrogate-free \u2028\u2029"},
    {"nested": {"z": [1, {"y": None, "x": [True, False]}], "a": {"c": {}, "b": []}}},
    {"numbers": [0, -1, 2**63, -(2**70), 1.5, -0.0, 1e-7, 1e300, 0.1]},
    {"bools": [True, False, None]},
    chain.jsonable(
        {
            "amount": Decimal("12.50"),
            "tiny": Decimal("1E-10"),
            "float": 3.14159,
            "when": dt.datetime(2026, 11, 30, 13, 27, 2, 123456, tzinfo=dt.UTC),
            "day": dt.date(2026, 2, 28),
            "other_zone": dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
            "time": dt.time(23, 59, 59, 1),
            "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
            7: "an int key",
            "set": frozenset({3}),
            "tuple": (1, "two"),
        }
    ),
    ["a", "list", "at", "the", "top"],
    "a bare string",
    None,
    42,
]


@pytest.mark.parametrize("value", TRICKY_DATA)
def test_canonical_writes_what_json_dumps_writes(value):
    assert chain.canonical(value) == _reference_text(value).encode()
    assert chain.digest(value) == hashlib.sha256(_reference_text(value).encode()).hexdigest()


def _leaf_values(**changes):
    fields = {
        "stream": "transaction",
        "created_at": dt.datetime(2026, 11, 30, 13, 27, 2, 5, tzinfo=dt.UTC),
        "actor_type": "system",
        "actor_id": "webhooks.stripe",
        "action": "payments.payment.paid",
        "category": "transaction",
        "target_type": "payments.payment",
        "target_id": "42",
        "data": {"amount": "100.00"},
        "request_id": "req-1",
        "ip": "192.0.2.0",
        "personal_data_digest": "ab" * 32,
    }
    fields.update(changes)
    return [fields[name] for name in chain.LEAF_FIELDS]


LEAF_CASES = [
    {},
    {"ip": None},
    {"ip": "2001:db8::"},
    {"actor_id": "", "target_type": "", "target_id": "", "request_id": ""},
    {"personal_data_digest": ""},
    {"actor_id": 'Zoë «ü» "q" \\ \n\t\x00 🎉'},
    {"action": "日本語.entry"},
    # As verification reads it: the time already in UTC text.
    {"created_at": "2026-11-30T13:27:02.000005+00:00"},
    # Another zone and no microseconds: the text is UTC with six digits either way.
    {"created_at": dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))},
    {"data": {}},
    {"data": TRICKY_DATA[6]},
    {"data": TRICKY_DATA[7]},
    {"data": TRICKY_DATA[9]},
    # Not plain strings: a str subclass (a Choices member), and values of other types,
    # which take the general way.
    {"stream": Stream.SECURITY},
    {"category": Category.ACCESS},
    {"target_id": 42},
    {"request_id": None},
    {"ip": 3232235520},
]


@pytest.mark.parametrize("changes", LEAF_CASES)
def test_a_leaf_hash_is_the_digest_of_the_canonical_payload(changes):
    values = _leaf_values(**changes)
    assert chain.leaf_hash_of_values(values) == _reference_leaf(values)
    fields = dict(zip(chain.LEAF_FIELDS, values, strict=True))
    assert chain.leaf_hash(fields) == _reference_leaf(values)


def test_many_generated_leaves_hash_as_before():
    alphabet = 'aZé日🎉"\\\n\t\x01 ,:{}[]'
    for number in range(2000):
        text = "".join(alphabet[(number * 7 + step) % len(alphabet)] for step in range(number % 13))
        values = _leaf_values(
            actor_id=text,
            target_id=str(number),
            data={text: number, "nested": {"list": [text, number / 7, None]}, "n": number},
            ip=None if number % 3 else f"10.0.{number % 256}.0",
            created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=number),
        )
        assert chain.leaf_hash_of_values(values) == _reference_leaf(values), values


def test_a_leaf_of_the_wrong_size_is_refused():
    with pytest.raises(ValueError, match="not enough values to unpack"):
        chain.leaf_hash_of_values(_leaf_values()[:-1])
