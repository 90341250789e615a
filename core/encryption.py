"""Personal data at rest: encrypted fields that fail loudly, and blind indexes.

django-encrypted-model-fields returns the ciphertext unchanged when a value does not
decrypt, so a wrong FIELD_ENCRYPTION_KEY would put ``gAAAAA...`` on screen and, worse,
save it back encrypted twice. The fields here raise instead. Use them for every
personal-data field and list the field in docs/data-inventory.md.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.db import models
from encrypted_model_fields import fields as library


class UndecryptableValueError(RuntimeError):
    """A stored value does not decrypt with any configured FIELD_ENCRYPTION_KEY."""


class StrictDecryptMixin:
    # Set by Django on the field this is mixed into.
    model: type[models.Model]
    name: str

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None:
            return None
        try:
            plaintext = library.decrypt_str(value)
        except InvalidToken:
            raise UndecryptableValueError(
                f"{self.model._meta.label}.{self.name} does not decrypt with any key in "
                "FIELD_ENCRYPTION_KEY (was a key removed before rotation finished?)"
            ) from None
        # Skip the library's lenient to_python: the value is already plaintext.
        return super(library.EncryptedMixin, self).to_python(plaintext)  # type: ignore[misc]


if TYPE_CHECKING:
    # The library ships no types: to mypy these are the fields they store as text.
    EncryptedCharField = models.CharField
    EncryptedTextField = models.TextField
    EncryptedEmailField = models.EmailField
else:

    class EncryptedCharField(StrictDecryptMixin, library.EncryptedCharField):
        pass

    class EncryptedTextField(StrictDecryptMixin, library.EncryptedTextField):
        pass

    class EncryptedEmailField(StrictDecryptMixin, library.EncryptedEmailField):
        pass


def column(model: type[models.Model], name: str | None = None) -> str:
    """The database column of field ``name`` of ``model`` (the primary key's without one)."""
    field = model._meta.pk if name is None else model._meta.get_field(name)
    if not isinstance(field, models.Field) or not field.column:
        raise ValueError(f"{model._meta.label}.{name} has no column")
    return field.column


def normalize_email(address: str) -> str:
    """The form every email takes before it is indexed: trimmed, lower case."""
    return address.strip().lower()


def blind_index_keys() -> list[str]:
    """BLIND_INDEX_KEY, comma-separated: the first computes every new index, and every
    one is tried on look-up, so a new key can be put first and the rows re-indexed
    (``manage.py reindex_blind_index``) before the old one is removed."""
    return [key.strip() for key in settings.BLIND_INDEX_KEY.split(",") if key.strip()] or [""]


def blind_index(address: str) -> str:
    """Keyed HMAC-SHA256 of the normalised address under the current (first)
    BLIND_INDEX_KEY: equal emails, equal index.

    Without BLIND_INDEX_KEY the index cannot be computed, so a stolen database
    cannot be searched for a known address.
    """
    return _hmac(blind_index_keys()[0], address)


# Hex characters of a blind index kept where it can never be erased (the audit
# chain): one in 65,536 addresses share a bucket, so it cannot confirm a guessed
# address, yet narrows a search for one person's entries to few candidates.
BUCKET_LENGTH = 4


def blind_index_bucket(index: str) -> str:
    return index[:BUCKET_LENGTH]


def blind_indexes(address: str) -> list[str]:
    """The address's index under every configured key, the current one first: what a
    look-up must match while rows indexed under an older key await re-indexing."""
    return [_hmac(key, address) for key in blind_index_keys()]


def blind_index_key_fingerprint() -> str:
    """The fingerprint stored beside each index (``User.email_index_key``)."""
    return key_fingerprint(blind_index_keys()[0])


def _hmac(key: str, address: str) -> str:
    return hmac.new(key.encode(), normalize_email(address).encode(), hashlib.sha256).hexdigest()


def key_fingerprint(key: str | bytes) -> str:
    """How a key is named in logs and audit entries: never the key itself."""
    raw = key.encode() if isinstance(key, str) else key
    return hashlib.sha256(raw).hexdigest()[:12]


def encrypting_key_fingerprint() -> str:
    return key_fingerprint(settings.FIELD_ENCRYPTION_KEY[0])


def reload_keys() -> None:
    """Rebuild the library's cipher from settings (it reads keys once, at import)."""
    library.CRYPTER = library.get_crypter()


def encrypted_fields() -> Iterator[tuple[type[models.Model], list[str]]]:
    """Every concrete model with encrypted fields, and their attribute names."""
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        names = [
            field.attname
            for field in model._meta.concrete_fields
            if isinstance(field, library.EncryptedMixin)
        ]
        if names:
            yield model, names


def undecryptable_samples(tables: set[str], using: str = "default") -> list[str]:
    """Read the oldest and newest stored value of every encrypted column in
    ``tables``, raw, and try to decrypt it. Describes each value that fails."""
    from django.db import connections

    connection = connections[using]
    quote = connection.ops.quote_name
    failures = []
    for model, names in encrypted_fields():
        if model._meta.db_table not in tables:
            continue
        table = quote(model._meta.db_table)
        pk = quote(column(model))
        for name in names:
            quoted = quote(column(model, name))
            for direction in ("ASC", "DESC"):
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"SELECT {pk}, {quoted} FROM {table} "  # noqa: S608 (names quoted)
                        f"WHERE {quoted} IS NOT NULL ORDER BY {pk} {direction} LIMIT 1"
                    )
                    row = cursor.fetchone()
                if row is None:
                    break
                try:
                    library.decrypt_str(row[1])
                except InvalidToken:
                    failures.append(f"{model._meta.label}.{name} (pk={row[0]})")
                    break
    return failures


@dataclass
class EncryptedModelScan:
    """What a full scan of one model's encrypted columns found."""

    rows: int = 0
    # Values that decrypt, but only with a key after the first: not rotated yet.
    older_key_values: int = 0
    # (pk, attribute name) of each value that decrypts with no configured key.
    undecryptable: list[tuple[Any, str]] = field(default_factory=list)


def scan_encrypted_model(
    model: type[models.Model],
    names: list[str],
    *,
    batch_size: int,
    on_batch: Callable[[int], object] = lambda rows: None,
    using: str = "default",
) -> EncryptedModelScan:
    """Try to decrypt every stored value of ``names``, reading the table raw in
    batches by primary key (the ORM would raise at the first bad value, and a
    lenient field would hide it). ``on_batch`` gets each batch's row count.

    Each value is tried with the first FIELD_ENCRYPTION_KEY alone, then with the
    others, so the scan also tells whether the older keys can be removed.
    """
    from django.db import connections

    keys = settings.FIELD_ENCRYPTION_KEY
    current = Fernet(keys[0])
    older = MultiFernet([Fernet(key) for key in keys[1:]]) if len(keys) > 1 else None
    connection = connections[using]
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    pk = quote(column(model))
    columns = ", ".join(quote(column(model, name)) for name in names)
    select = f"SELECT {pk}, {columns} FROM {table}"  # noqa: S608 (names quoted)
    scan = EncryptedModelScan()
    last_pk = None
    while True:
        with connection.cursor() as cursor:
            if last_pk is None:
                cursor.execute(f"{select} ORDER BY {pk} LIMIT %s", [batch_size])
            else:
                cursor.execute(
                    f"{select} WHERE {pk} > %s ORDER BY {pk} LIMIT %s", [last_pk, batch_size]
                )
            rows = cursor.fetchall()
        if not rows:
            return scan
        for row_pk, *values in rows:
            for name, value in zip(names, values, strict=True):
                if value is None:
                    continue
                token = value.encode() if isinstance(value, str) else bytes(value)
                if _decrypts(current, token):
                    continue
                if older is not None and _decrypts(older, token):
                    scan.older_key_values += 1
                else:
                    scan.undecryptable.append((row_pk, name))
        last_pk = rows[-1][0]
        scan.rows += len(rows)
        on_batch(len(rows))


def _decrypts(cipher: Fernet | MultiFernet, token: bytes) -> bool:
    try:
        cipher.decrypt(token)
    except InvalidToken:
        return False
    return True
