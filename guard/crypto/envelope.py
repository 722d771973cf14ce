"""Envelope encryption of customer records: per-customer data keys wrapped by versioned KEKs.

Threat: a stolen database or backup, or an insider with SQL access, reads customer data or
moves it around. Each customer has a random 256-bit data key; every field is AES-256-GCM
encrypted under it, and the data key is stored only wrapped by a key-encryption key (KEK) held
by a :class:`~guard.crypto.providers.KeyProvider`. Associated data binds

* a field ciphertext to its format version, tenant, customer, field name and key version, and
* a wrapped data key to its tenant, customer and KEK version,

so a ciphertext copied to another row, field or tenant, or a wrapped key paired with another
version or customer, fails authentication instead of decrypting as the wrong customer's data.
Rotation re-wraps data keys under a new KEK version without touching field ciphertexts;
deleting a customer's wrapped data key (crypto-shredding) leaves every copy of their
ciphertext, in every backup, undecryptable.

Ciphertext layout (field): ``0x01 || nonce (12) || ciphertext || tag (16)``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from guard.crypto.errors import IntegrityError, KeyConfigurationError
from guard.crypto.primitives import GCM_KEY_BYTES, frame, gcm_decrypt, gcm_encrypt

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from guard.crypto.providers import KeyProvider

#: Ciphertext format version; also authenticated inside the associated data.
FORMAT_VERSION = 1
_FORMAT_BYTE = bytes([FORMAT_VERSION])
DATA_KEY_BYTES = GCM_KEY_BYTES
_FIELD_PURPOSE = b"guard/record-field/v1"
_DATA_KEY_PURPOSE = b"guard/data-key/v1"


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A data key as stored: the KEK version that wrapped it and the wrapped bytes."""

    kek_version: int
    wrapped: bytes

    def __repr__(self) -> str:
        return f"WrappedKey(kek_version={self.kek_version}, wrapped=<{len(self.wrapped)} bytes>)"


def _text(value: str, what: str) -> bytes:
    if not value:
        raise ValueError(f"{what} must not be empty")
    return value.encode("utf-8")


def _version_bytes(version: int) -> bytes:
    if version < 1:
        raise ValueError("key versions start at 1")
    return str(version).encode("ascii")


class EnvelopeCipher:
    """Data keys (new, unwrap, re-wrap) and field encryption, over one key provider."""

    __slots__ = ("_provider",)

    def __init__(self, provider: KeyProvider) -> None:
        self._provider = provider

    @property
    def provider(self) -> KeyProvider:
        """The key provider holding the KEKs."""
        return self._provider

    # ------------------------------------------------------------------ data keys

    @staticmethod
    def _key_aad(tenant: str, customer: str, version: int) -> bytes:
        return frame(
            [
                _DATA_KEY_PURPOSE,
                _text(tenant, "tenant"),
                _text(customer, "customer"),
                _version_bytes(version),
            ]
        )

    def new_data_key(self, *, tenant: str, customer: str) -> tuple[bytes, WrappedKey]:
        """A fresh random data key and its wrapping under the current KEK version."""
        version = self._provider.current_version()
        data_key = os.urandom(DATA_KEY_BYTES)
        wrapped = self._provider.wrap(version, data_key, self._key_aad(tenant, customer, version))
        return data_key, WrappedKey(kek_version=version, wrapped=wrapped)

    def unwrap_data_key(self, wrapped: WrappedKey, *, tenant: str, customer: str) -> bytes:
        """The data key inside ``wrapped``; a mismatch of any kind raises IntegrityError."""
        version = wrapped.kek_version
        if version < 1:
            raise IntegrityError("wrapped key names no valid KEK version")
        data_key = self._provider.unwrap(
            version, wrapped.wrapped, self._key_aad(tenant, customer, version)
        )
        if len(data_key) != DATA_KEY_BYTES:  # pragma: no cover - authenticated above
            raise IntegrityError("wrapped key failed authentication")
        return data_key

    def rewrap(
        self, wrapped: WrappedKey, *, tenant: str, customer: str, to_version: int | None = None
    ) -> WrappedKey:
        """The same data key wrapped under ``to_version`` (default: the current version)."""
        target = self._provider.current_version() if to_version is None else to_version
        data_key = self.unwrap_data_key(wrapped, tenant=tenant, customer=customer)
        blob = self._provider.wrap(target, data_key, self._key_aad(tenant, customer, target))
        return WrappedKey(kek_version=target, wrapped=blob)

    # --------------------------------------------------------------------- fields

    @staticmethod
    def _field_aad(tenant: str, customer: str, field_name: str, version: int) -> bytes:
        return frame(
            [
                _FIELD_PURPOSE,
                _FORMAT_BYTE,
                _text(tenant, "tenant"),
                _text(customer, "customer"),
                _text(field_name, "field"),
                _version_bytes(version),
            ]
        )

    def encrypt_field(
        self,
        data_key: bytes,
        plaintext: str,
        *,
        tenant: str,
        customer: str,
        field: str,
        kek_version: int,
    ) -> bytes:
        """Encrypt one field value under the customer's data key."""
        aad = self._field_aad(tenant, customer, field, kek_version)
        return _FORMAT_BYTE + gcm_encrypt(data_key, plaintext.encode("utf-8"), aad)

    def decrypt_field(
        self,
        data_key: bytes,
        ciphertext: bytes,
        *,
        tenant: str,
        customer: str,
        field: str,
        kek_version: int,
    ) -> str:
        """Decrypt one field; wrong key, context, format, tampering or truncation all fail."""
        if len(data_key) != DATA_KEY_BYTES:
            raise IntegrityError("ciphertext failed authentication")
        if not ciphertext or ciphertext[:1] != _FORMAT_BYTE:
            raise IntegrityError("ciphertext failed authentication (unknown format)")
        if kek_version < 1:
            raise IntegrityError("ciphertext failed authentication")
        aad = self._field_aad(tenant, customer, field, kek_version)
        plaintext = gcm_decrypt(data_key, ciphertext[1:], aad)
        try:
            return plaintext.decode("utf-8")
        except UnicodeDecodeError:  # pragma: no cover - authenticated, so only a writer bug
            raise IntegrityError("ciphertext failed authentication") from None

    def __repr__(self) -> str:
        return f"EnvelopeCipher(provider={self._provider!r})"


# ---------------------------------------------------------------------- rotation


class DataKeyStore(Protocol):
    """Where wrapped data keys are stored (the records table), as rotation needs it."""

    def iter_wrapped(
        self, batch_size: int, *, not_version: int | None = None
    ) -> Iterator[tuple[str, str, str, WrappedKey]]:
        """(key id, tenant, customer, wrapped key) of every data key.

        ``not_version`` skips keys already under that KEK version; each batch is read in its
        own short transaction.
        """
        ...

    def replace_wrapped(self, key_id: str, old: WrappedKey, new: WrappedKey) -> bool:
        """Compare-and-set: store ``new`` only if ``key_id`` still holds ``old``."""
        ...

    def count_by_version(self) -> dict[int, int]:
        """How many data keys each KEK version wraps."""
        ...


class CombinedDataKeyStore:
    """Several stores of wrapped data keys as one (records, export purposes), for rotation.

    Key ids become ``<index>:<id>`` so a report names which store a failed key is in; a KEK
    version is in use while any store still has a key under it.
    """

    def __init__(self, *stores: DataKeyStore) -> None:
        self._stores = stores

    def iter_wrapped(
        self, batch_size: int, *, not_version: int | None = None
    ) -> Iterator[tuple[str, str, str, WrappedKey]]:
        """Every store's data keys, one store after the other."""
        for index, store in enumerate(self._stores):
            for key_id, tenant, customer, wrapped in store.iter_wrapped(
                batch_size, not_version=not_version
            ):
                yield f"{index}:{key_id}", tenant, customer, wrapped

    def replace_wrapped(self, key_id: str, old: WrappedKey, new: WrappedKey) -> bool:
        """Compare-and-set in the store the key id names."""
        index, _, inner = key_id.partition(":")
        return self._stores[int(index)].replace_wrapped(inner, old, new)

    def count_by_version(self) -> dict[int, int]:
        """Data keys per KEK version, over every store."""
        total: dict[int, int] = {}
        for store in self._stores:
            for version, count in store.count_by_version().items():
                total[version] = total.get(version, 0) + count
        return total


@dataclass
class RotationReport:
    """What a re-wrap pass did. Key ids are record ids (random UUIDs), never customer data."""

    target_version: int
    rewrapped: int = 0
    #: Changed by someone else between read and write (erased, or re-wrapped by another run).
    skipped: int = 0
    #: Failed authentication or name a KEK version the provider lacks: investigate these.
    failed: list[str] = field(default_factory=list)
    passes: int = 0
    seconds: float = 0.0
    #: Data keys still under another version when the run ended (0 when complete).
    remaining: int = 0

    @property
    def complete(self) -> bool:
        """Every data key is now wrapped under the target version."""
        return self.remaining == 0


def rewrap_all(
    cipher: EnvelopeCipher,
    store: DataKeyStore,
    *,
    target_version: int | None = None,
    batch_size: int = 500,
    max_passes: int = 5,
    progress: Callable[[int], None] | None = None,
) -> RotationReport:
    """Re-wrap every data key not under ``target_version`` (default: current), resumably.

    Each key is swapped by compare-and-set in its own short transaction, so readers and writers
    carry on during rotation and a crash loses nothing: run it again and it continues with the
    keys still under older versions. Keys written by processes that had not yet seen the new
    version are caught by further passes.
    """
    target = cipher.provider.current_version() if target_version is None else target_version
    report = RotationReport(target_version=target)
    started = time.perf_counter()
    failed: set[str] = set()
    while report.passes < max_passes:
        report.passes += 1
        progressed = 0
        for key_id, tenant, customer, wrapped in store.iter_wrapped(batch_size, not_version=target):
            if key_id in failed:
                continue
            try:
                new = cipher.rewrap(wrapped, tenant=tenant, customer=customer, to_version=target)
            except IntegrityError:
                failed.add(key_id)
                report.failed.append(key_id)
                continue
            if store.replace_wrapped(key_id, wrapped, new):
                report.rewrapped += 1
                progressed += 1
            else:
                report.skipped += 1
            if progress is not None:
                progress(1)
        remaining = sum(n for v, n in store.count_by_version().items() if v != target)
        report.remaining = remaining
        if remaining <= len(failed) or progressed == 0:
            break
    report.seconds = time.perf_counter() - started
    return report


def retire_version(provider: KeyProvider, store: DataKeyStore, version: int) -> None:
    """Destroy KEK ``version``; refused while it is current or wraps any data key."""
    if version == provider.current_version():
        raise KeyConfigurationError(
            f"KEK version {version} is current; run `guard keys rotate` before retiring it"
        )
    in_use = store.count_by_version().get(version, 0)
    if in_use:
        raise KeyConfigurationError(
            f"KEK version {version} still wraps {in_use} data key(s); "
            "run `guard keys rotate --resume` first"
        )
    provider.retire(version)
