"""Key providers: where the key-encryption keys (KEKs) live, behind one protocol.

A provider holds versioned KEKs and does exactly two things with them: wrap a data key and unwrap
it, both with associated data chosen by :mod:`guard.crypto.envelope`. A KEK never leaves its
provider: the local keyring keeps it encrypted on disk and in memory only while guard runs; the
PKCS#11 provider keeps it inside a hardware security module (non-extractable), so even guard's
own process never sees it.

Providers:
    ``local``   a keyring file (``keys/keyring.json`` by default); see :mod:`guard.crypto.keyring`
    ``pkcs11``  a PKCS#11 token (an HSM, or SoftHSM2 in tests); see
                :mod:`guard.crypto.pkcs11_provider`
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from guard.crypto.errors import KeyConfigurationError

if TYPE_CHECKING:
    from datetime import datetime

    from guard.config import Settings

KeyState = Literal["active", "retired"]


@dataclass(frozen=True, slots=True)
class KeyVersionInfo:
    """Metadata of one KEK version (never its material)."""

    version: int
    state: KeyState
    created_at: datetime | None = None
    retired_at: datetime | None = None


class KeyProvider(Protocol):
    """Versioned key-encryption keys that wrap and unwrap data keys.

    ``wrap`` and ``unwrap`` raise :class:`~guard.crypto.errors.UnknownKeyVersionError` for a
    version the provider does not hold (never created, retired, or a rolled-back keyring) and
    :class:`~guard.crypto.errors.IntegrityError` when a wrapped key fails authentication.
    """

    #: ``local`` or ``pkcs11``: shown by ``guard keys status``.
    name: str

    def current_version(self) -> int:
        """The version new data keys are wrapped under (the newest active one)."""
        ...

    def versions(self) -> list[KeyVersionInfo]:
        """Every version the provider knows, oldest first, retired ones included."""
        ...

    def wrap(self, version: int, data_key: bytes, associated_data: bytes) -> bytes:
        """Encrypt ``data_key`` under KEK ``version``, authenticating ``associated_data``."""
        ...

    def unwrap(self, version: int, wrapped: bytes, associated_data: bytes) -> bytes:
        """Decrypt a wrapped data key; any mismatch raises IntegrityError."""
        ...

    def create_version(self) -> int:
        """Generate a new KEK version and make it current; return its number."""
        ...

    def retire(self, version: int) -> None:
        """Destroy KEK ``version`` (refused for the current version)."""
        ...


def initialise_key_provider(settings: Settings) -> KeyProvider:
    """Create KEK version 1 in the configured provider; refused if it already has keys."""
    if settings.key_provider == "local":
        from guard.crypto.keyring import LocalKeyring  # noqa: PLC0415

        keyring = LocalKeyring.new(settings)
        keyring.initialise()
        return keyring
    provider = load_key_provider(settings)
    if provider.versions():
        raise KeyConfigurationError(
            f"PKCS#11 token {settings.pkcs11_token_label!r} already holds guard KEKs"
        )
    provider.create_version()
    return provider


def load_key_provider(settings: Settings, *, create: bool | None = None) -> KeyProvider:
    """The configured provider (``GUARD_KEY_PROVIDER``).

    ``create``: whether a missing local keyring may be created; by default only in development,
    so a production service never starts on a keyring it invented (run ``guard keys init``).
    """
    if settings.key_provider == "pkcs11":
        from guard.crypto.pkcs11_provider import Pkcs11Provider  # noqa: PLC0415 - optional extra

        return Pkcs11Provider.from_settings(settings)
    if settings.key_provider == "local":
        from guard.crypto.keyring import LocalKeyring  # noqa: PLC0415

        allow_create = settings.env == "development" if create is None else create
        return LocalKeyring.open(settings, create=allow_create)
    raise KeyConfigurationError(  # pragma: no cover - the setting is a Literal
        f"unknown key provider {settings.key_provider!r}"
    )
