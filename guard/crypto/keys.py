"""The redaction key hierarchy: one master key, HKDF-derived keys per purpose and tenant.

Threat: a key shared between purposes or tenants lets one tenant's pseudonyms be linked to
another's, or a token minted for one tenant be revealed by another. Each derived key is bound by
its HKDF ``info`` to one purpose (``pseudonym`` or ``token``), one version and one tenant, so no
two uses ever share a key. The master key comes from ``GUARD_REDACTION_KEY``; in development only,
guard creates a random one under ``keys_dir`` (mode 0600). Objects holding keys never print them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import secrets
from typing import TYPE_CHECKING

from guard.crypto.errors import KeyConfigurationError
from guard.crypto.primitives import (
    HMAC_KEY_BYTES,
    MIN_MASTER_KEY_BYTES,
    SIV_KEY_BYTES,
    hkdf_sha256,
    hmac_sha256,
    siv_decrypt,
    siv_encrypt,
)
from guard.errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from guard.config import Settings

#: Name of the environment variable users set; errors name it, never its value.
KEY_ENV_VAR = "GUARD_REDACTION_KEY"
#: File name of the development master key inside ``keys_dir``.
DEV_KEY_FILENAME = "redaction.key"

PSEUDONYM_PURPOSE = b"guard/pseudonym/v1/"
TOKEN_PURPOSE = b"guard/token/v1/"

_HEX = re.compile(r"[0-9a-fA-F]+")


class MasterKey:
    """The master redaction key; only :meth:`derive` ever sees its bytes."""

    __slots__ = ("_material",)

    def __init__(self, material: bytes) -> None:
        if len(material) < MIN_MASTER_KEY_BYTES:
            raise KeyConfigurationError(
                f"redaction master key must be at least {MIN_MASTER_KEY_BYTES} bytes"
            )
        self._material = bytes(material)

    def derive(self, info: bytes, length: int) -> bytes:
        """Derive a subkey bound to ``info``."""
        return hkdf_sha256(self._material, info=info, length=length)

    def __repr__(self) -> str:
        return "MasterKey(material=<redacted>)"

    def __reduce__(self) -> tuple[object, ...]:
        # Keys must not travel by pickle (logs of task queues, crash dumps).
        raise TypeError("MasterKey cannot be pickled")


def parse_master_key(value: str) -> MasterKey:
    """Decode ``GUARD_REDACTION_KEY`` (hex, base64url or base64 of >= 32 bytes) into a key."""
    text = value.strip()
    material: bytes | None = None
    if len(text) % 2 == 0 and _HEX.fullmatch(text):
        material = bytes.fromhex(text)
    else:
        padded = text + "=" * (-len(text) % 4)
        with contextlib.suppress(binascii.Error, ValueError):
            material = base64.b64decode(padded, altchars=b"-_", validate=True)
    if material is None or len(material) < MIN_MASTER_KEY_BYTES:
        raise KeyConfigurationError(
            f"{KEY_ENV_VAR} must be base64url or hex encoding of at least "
            f"{MIN_MASTER_KEY_BYTES} random bytes"
        )
    return MasterKey(material)


def _read_dev_key(path: Path) -> MasterKey:
    try:
        material = path.read_bytes()
    except OSError as exc:
        raise KeyConfigurationError(
            f"{path}: cannot read development redaction key ({exc.strerror})"
        ) from None
    if len(material) < MIN_MASTER_KEY_BYTES:
        raise KeyConfigurationError(
            f"{path}: development redaction key is shorter than {MIN_MASTER_KEY_BYTES} bytes"
        )
    return MasterKey(material)


def write_new_secret_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` beside ``path`` and link it into place; never overwrite an existing key.

    link() fails if another process created the file first: theirs wins, and both use it.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.fchmod(fd, mode)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _create_dev_key(path: Path) -> None:
    """A fresh random master key at ``path`` (development only)."""
    write_new_secret_file(path, secrets.token_bytes(MIN_MASTER_KEY_BYTES))


def dev_key_path(settings: Settings) -> Path:
    """Where the development master key lives."""
    return settings.keys_dir / DEV_KEY_FILENAME


def load_master_key(settings: Settings) -> MasterKey:
    """Load the master key; in development, create and reuse ``keys_dir/redaction.key``."""
    if settings.redaction_key is not None:
        return parse_master_key(settings.redaction_key.get_secret_value())
    if settings.env == "production":
        raise KeyConfigurationError(f"{KEY_ENV_VAR} is not set; it is required in production")
    path = dev_key_path(settings)
    if not path.exists():
        try:
            _create_dev_key(path)
        except OSError as exc:
            raise KeyConfigurationError(
                f"{path}: cannot create development redaction key ({exc.strerror})"
            ) from None
    return _read_dev_key(path)


def _tenant_bytes(tenant: str) -> bytes:
    if not tenant:
        raise InvalidInputError("tenant must not be empty")
    return tenant.encode("utf-8")


class RedactionKeys:
    """Per-tenant pseudonym and token keys derived from one master key, cached after first use."""

    __slots__ = ("_cache", "_master")

    def __init__(self, master: MasterKey) -> None:
        self._master = master
        self._cache: dict[tuple[bytes, str], bytes] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> RedactionKeys:
        """Load the master key as configured (see :func:`load_master_key`)."""
        return cls(load_master_key(settings))

    def _key(self, purpose: bytes, tenant: str, length: int) -> bytes:
        cache_key = (purpose, tenant)
        key = self._cache.get(cache_key)
        if key is None:
            key = self._master.derive(purpose + _tenant_bytes(tenant), length)
            self._cache[cache_key] = key
        return key

    def pseudonym_digest(self, *, tenant: str, scope: str, value: str) -> bytes:
        """HMAC-SHA256 of ``value`` within ``scope`` under the tenant's pseudonym key."""
        key = self._key(PSEUDONYM_PURPOSE, tenant, HMAC_KEY_BYTES)
        return hmac_sha256(key, scope.encode("utf-8"), value.encode("utf-8"))

    def seal_token(self, *, tenant: str, plaintext: bytes, context: Sequence[bytes]) -> bytes:
        """AES-SIV encrypt under the tenant's token key; ``context`` is authenticated."""
        key = self._key(TOKEN_PURPOSE, tenant, SIV_KEY_BYTES)
        return siv_encrypt(key, plaintext, [TOKEN_PURPOSE, _tenant_bytes(tenant), *context])

    def open_token(self, *, tenant: str, ciphertext: bytes, context: Sequence[bytes]) -> bytes:
        """Decrypt a sealed token; raises IntegrityError on any mismatch."""
        key = self._key(TOKEN_PURPOSE, tenant, SIV_KEY_BYTES)
        return siv_decrypt(key, ciphertext, [TOKEN_PURPOSE, _tenant_bytes(tenant), *context])

    def __repr__(self) -> str:
        return f"RedactionKeys(master={self._master!r}, derived={len(self._cache)})"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("RedactionKeys cannot be pickled")
