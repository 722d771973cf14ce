"""The local keyring: versioned key-encryption keys (KEKs) in one file, encrypted and MAC'd.

Threat: the keyring file is copied (a stolen laptop, a backup, a container image layer) or
edited (a retired version brought back, the current version changed). Every KEK in the file is
AES-256-GCM encrypted under a *protection key* that is never stored: it is derived with scrypt
from a passphrase (``GUARD_KEYRING_PASSPHRASE``) or with HKDF from a raw master key
(``GUARD_MASTER_KEY``, for containers); in development only, with neither set, from the
development redaction key. The whole file is authenticated by an HMAC under a second key
derived from the same secret, so any edit, or a wrong passphrase, is refused rather than used.

Retiring a version deletes its material from the file: data keys still wrapped under it could
never be unwrapped again, so :func:`guard.crypto.envelope.retire_version` refuses while any are.
Writes take an exclusive lock, write a new file beside the old one and rename it into place, so
a crash leaves either the old or the new keyring, never half of one. Running services notice a
new file (rotation by ``guard keys rotate`` in another process) on their next key operation.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hmac
import json
import os
import secrets
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import structlog

from guard.crypto.errors import IntegrityError, KeyConfigurationError, UnknownKeyVersionError
from guard.crypto.keys import load_master_key, parse_master_key
from guard.crypto.primitives import (
    GCM_KEY_BYTES,
    frame,
    gcm_decrypt,
    gcm_encrypt,
    hkdf_sha256,
    hmac_sha256,
    scrypt_derive,
)
from guard.crypto.providers import KeyVersionInfo

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from guard.config import Settings

log = structlog.get_logger(__name__)

FORMAT = "guard-keyring/1"
Protection = Literal["passphrase", "master-key", "development"]
#: scrypt cost: N=2**17, r=8 is 128 MiB of memory per guess (OWASP's recommended setting for
#: password storage); the keyring is unlocked once per process, so the cost falls on guessers.
SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
#: Files asking for less than this, or absurdly more, are refused (a downgraded file).
_SCRYPT_MIN_N = 2**14
_SCRYPT_MAX_R = 32
_SCRYPT_MAX_P = 16
_SALT_BYTES = 16
_WRAP_INFO = b"guard/keyring/kek-wrap/v1"
_MAC_INFO = b"guard/keyring/mac/v1"
_DEV_INFO = b"guard/keyring/development/v1"
_KEK_AAD = b"guard/keyring/kek/v1"
_MIN_PASSPHRASE = 12


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, where: str) -> bytes:
    if not isinstance(text, str):
        raise KeyConfigurationError(f"keyring: {where} is not a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyConfigurationError(f"keyring: {where} is not valid base64") from None


def _now() -> datetime:
    return datetime.now(UTC)


class _Secret:
    """Which secret protects the keyring, and the derivation from it (cached per salt)."""

    def __init__(self, settings: Settings) -> None:
        self.kind: Protection
        self._material: bytes
        if settings.master_key is not None:
            self.kind = "master-key"
            text = settings.master_key.get_secret_value()
            try:
                parsed = parse_master_key(text)
            except KeyConfigurationError:
                raise KeyConfigurationError(
                    "GUARD_MASTER_KEY must be base64url or hex encoding of at least 32 random bytes"
                ) from None
            self._material = parsed.derive(b"guard/keyring/master/v1", GCM_KEY_BYTES)
        elif settings.keyring_passphrase is not None:
            self.kind = "passphrase"
            passphrase = settings.keyring_passphrase.get_secret_value()
            if len(passphrase) < _MIN_PASSPHRASE:
                raise KeyConfigurationError(
                    f"GUARD_KEYRING_PASSPHRASE must be at least {_MIN_PASSPHRASE} characters"
                )
            self._material = passphrase.encode("utf-8")
        elif settings.env == "development":
            self.kind = "development"
            self._material = load_master_key(settings).derive(_DEV_INFO, GCM_KEY_BYTES)
        else:
            raise KeyConfigurationError(
                "the keyring needs GUARD_MASTER_KEY or GUARD_KEYRING_PASSPHRASE in production"
            )
        self._cache: dict[tuple[bytes, int, int, int], bytes] = {}

    def root(self, protection: dict[str, Any]) -> bytes:
        """The root key for a file's ``protection`` block (same secret + salt = same key)."""
        salt = _unb64(protection.get("salt"), "protection.salt")
        if self.kind == "passphrase":
            params = (protection.get("n"), protection.get("r"), protection.get("p"))
            if not all(isinstance(v, int) and v > 0 for v in params):
                raise KeyConfigurationError("keyring: scrypt parameters are malformed")
            n, r, p = (int(v) for v in params)  # type: ignore[arg-type]
            if n < _SCRYPT_MIN_N or n & (n - 1) or r > _SCRYPT_MAX_R or p > _SCRYPT_MAX_P:
                raise KeyConfigurationError("keyring: scrypt parameters are out of range")
            cache_key = (salt, n, r, p)
            root = self._cache.get(cache_key)
            if root is None:
                root = scrypt_derive(self._material, salt=salt, n=n, r=r, p=p)
                self._cache[cache_key] = root
            return root
        return hkdf_sha256(self._material + salt, info=b"guard/keyring/root/v1", length=32)

    def new_protection(self) -> dict[str, Any]:
        """A fresh ``protection`` block (new salt) for a new keyring."""
        block: dict[str, Any] = {"kind": self.kind, "salt": _b64(secrets.token_bytes(_SALT_BYTES))}
        if self.kind == "passphrase":
            block.update({"kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P})
        return block


def _canonical(document: dict[str, Any]) -> bytes:
    body = {k: v for k, v in document.items() if k != "mac"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


class LocalKeyring:
    """A :class:`~guard.crypto.providers.KeyProvider` backed by a keyring file."""

    name = "local"

    def __init__(self, path: Path, secret: _Secret) -> None:
        self.path = path
        self._secret = secret
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._keks: dict[int, bytes] = {}
        self._infos: list[KeyVersionInfo] = []
        self._current = 0

    # ------------------------------------------------------------------ opening

    @classmethod
    def new(cls, settings: Settings) -> LocalKeyring:
        """The configured keyring, not yet read (for :meth:`initialise`)."""
        return cls(settings.keyring_file, _Secret(settings))

    @classmethod
    def open(cls, settings: Settings, *, create: bool = False) -> LocalKeyring:
        """Open the configured keyring; create it with version 1 if missing and ``create``."""
        keyring = cls.new(settings)
        if not keyring.path.exists():
            if not create:
                raise KeyConfigurationError(
                    f"{keyring.path}: no keyring; create one with `guard keys init`"
                )
            keyring.initialise(exist_ok=True)
            log.info("keyring.created", path=str(keyring.path), protection=keyring._secret.kind)  # noqa: SLF001 - same class
        keyring.reload()
        return keyring

    def reload(self) -> None:
        """Read the file again now (verifies its MAC and decrypts every active version)."""
        self._refresh(force=True)

    def initialise(self, *, exist_ok: bool = False) -> int:
        """Create the keyring file with KEK version 1; return 1."""
        with self._file_lock():
            if self.path.exists():
                if exist_ok:
                    return self._load_locked()
                raise KeyConfigurationError(f"{self.path}: a keyring already exists")
            protection = self._secret.new_protection()
            document: dict[str, Any] = {
                "format": FORMAT,
                "protection": protection,
                "current": 0,
                "versions": [],
            }
            self._add_version(document, 1)
            self._write(document)
            return self._load_locked()

    # ------------------------------------------------------------------ protocol

    def current_version(self) -> int:
        """The version new data keys are wrapped under."""
        self._refresh()
        return self._current

    def versions(self) -> list[KeyVersionInfo]:
        """Every version, oldest first (retired ones have no material left)."""
        self._refresh()
        return list(self._infos)

    def wrap(self, version: int, data_key: bytes, associated_data: bytes) -> bytes:
        """AES-256-GCM ``data_key`` under KEK ``version``: ``0x01 || nonce || ct || tag``."""
        kek = self._kek(version)
        return b"\x01" + gcm_encrypt(kek, data_key, associated_data)

    def unwrap(self, version: int, wrapped: bytes, associated_data: bytes) -> bytes:
        """Open a wrapped data key; any mismatch raises IntegrityError."""
        kek = self._kek(version)
        if not wrapped or wrapped[0] != 1:
            raise IntegrityError("wrapped key failed authentication")
        try:
            return gcm_decrypt(kek, wrapped[1:], associated_data)
        except IntegrityError:
            raise IntegrityError("wrapped key failed authentication") from None

    def create_version(self) -> int:
        """A new random KEK, made current; older versions stay for unwrapping."""
        with self._file_lock():
            document = self._read_verified()
            number = max((v["version"] for v in document["versions"]), default=0) + 1
            self._add_version(document, number)
            self._write(document)
            self._load_locked()
            return number

    def retire(self, version: int) -> None:
        """Delete KEK ``version``'s material (refused for the current version)."""
        with self._file_lock():
            document = self._read_verified()
            entries = {v["version"]: v for v in document["versions"]}
            entry = entries.get(version)
            if entry is None or entry["state"] != "active":
                raise UnknownKeyVersionError(f"KEK version {version} is not an active version")
            if version == document["current"]:
                raise KeyConfigurationError(
                    f"KEK version {version} is current; rotate before retiring it"
                )
            entry.update(state="retired", material=None, retired_at=_now().isoformat())
            self._write(document)
            self._load_locked()

    # ------------------------------------------------------------------ internals

    def _kek(self, version: int) -> bytes:
        # One stat per use: a version created or retired by another process (``guard keys``)
        # takes effect here at once, without a restart.
        self._refresh()
        kek = self._keks.get(version)
        if kek is None:
            raise UnknownKeyVersionError(
                f"KEK version {version} is not in the keyring (retired, never created, "
                "or the keyring was restored from an older copy)"
            )
        return kek

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _refresh(self, *, force: bool = False) -> None:
        stamp = self._file_stamp()
        if stamp is None:
            raise KeyConfigurationError(
                f"{self.path}: the keyring is missing; restore it from backup "
                "(without it no record can be decrypted)"
            )
        if force or stamp != self._stamp:
            with self._lock:
                self._load_locked()

    def _load_locked(self) -> int:
        stamp = self._file_stamp()
        document = self._read_verified()
        current: int = document["current"]
        root = self._secret.root(document["protection"])
        wrap_key = hkdf_sha256(root, info=_WRAP_INFO, length=GCM_KEY_BYTES)
        keks: dict[int, bytes] = {}
        infos: list[KeyVersionInfo] = []
        for entry in document["versions"]:
            number = entry["version"]
            if entry["state"] == "active":
                material = _unb64(entry.get("material"), f"version {number}")
                keks[number] = gcm_decrypt(wrap_key, material, self._kek_aad(number))
            infos.append(
                KeyVersionInfo(
                    version=number,
                    state=entry["state"],
                    created_at=_parse_time(entry.get("created_at")),
                    retired_at=_parse_time(entry.get("retired_at")),
                )
            )
        if current not in keks:
            raise KeyConfigurationError(f"{self.path}: the current KEK version is not active")
        self._keks, self._infos, self._current = keks, infos, current
        self._stamp = stamp
        return current

    @staticmethod
    def _kek_aad(version: int) -> bytes:
        return frame([_KEK_AAD, str(version).encode("ascii")])

    def _add_version(self, document: dict[str, Any], number: int) -> None:
        root = self._secret.root(document["protection"])
        wrap_key = hkdf_sha256(root, info=_WRAP_INFO, length=GCM_KEY_BYTES)
        material = gcm_encrypt(wrap_key, secrets.token_bytes(GCM_KEY_BYTES), self._kek_aad(number))
        document["versions"].append(
            {
                "version": number,
                "state": "active",
                "created_at": _now().isoformat(),
                "retired_at": None,
                "material": _b64(material),
            }
        )
        document["current"] = number

    def _mac(self, document: dict[str, Any]) -> str:
        root = self._secret.root(document["protection"])
        mac_key = hkdf_sha256(root, info=_MAC_INFO, length=32)
        return hmac_sha256(mac_key, _canonical(document)).hex()

    def _read_verified(self) -> dict[str, Any]:
        try:
            document: dict[str, Any] = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            raise KeyConfigurationError(f"{self.path}: the keyring is missing") from None
        except OSError as exc:
            raise KeyConfigurationError(f"{self.path}: cannot read ({exc.strerror})") from None
        except (ValueError, UnicodeDecodeError):
            raise KeyConfigurationError(f"{self.path}: not a keyring (invalid JSON)") from None
        _check_shape(document, self.path)
        kind = document["protection"]["kind"]
        if kind != self._secret.kind:
            raise KeyConfigurationError(f"{self.path}: {_needs(kind)}")
        if not hmac.compare_digest(self._mac(document), str(document["mac"])):
            raise KeyConfigurationError(
                f"{self.path}: keyring failed authentication (wrong "
                f"{_secret_name(kind)}, or the file was modified)"
            )
        return document

    def _write(self, document: dict[str, Any]) -> None:
        document["mac"] = self._mac(document)
        data = json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            tmp.replace(self.path)
        finally:
            tmp.unlink(missing_ok=True)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with self._lock:
                yield
        finally:
            os.close(fd)

    def __repr__(self) -> str:
        return f"LocalKeyring(path={str(self.path)!r}, versions={sorted(self._keks)!r})"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("LocalKeyring cannot be pickled")


def _secret_name(kind: str) -> str:
    return {
        "passphrase": "GUARD_KEYRING_PASSPHRASE",
        "master-key": "GUARD_MASTER_KEY",
        "development": "development redaction key (keys/redaction.key)",
    }.get(kind, "secret")


def _needs(kind: str) -> str:
    if kind == "development":
        return (
            "this keyring is protected by the development key; unset GUARD_MASTER_KEY and "
            "GUARD_KEYRING_PASSPHRASE and run with GUARD_ENV=development"
        )
    return f"this keyring is protected by {_secret_name(kind)}; set it"


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(value)
    return None


def _check_shape(document: object, path: Path) -> None:
    """Refuse a file that is not a keyring before any key is derived from it."""
    problem = None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        problem = f"not a keyring (format must be {FORMAT!r})"
    elif not isinstance(document.get("protection"), dict) or document["protection"].get(
        "kind"
    ) not in ("passphrase", "master-key", "development"):
        problem = "protection block is malformed"
    elif not isinstance(document.get("versions"), list) or not all(
        isinstance(v, dict)
        and isinstance(v.get("version"), int)
        and v.get("state") in ("active", "retired")
        for v in document["versions"]
    ):
        problem = "versions are malformed"
    elif not isinstance(document.get("current"), int) or not isinstance(document.get("mac"), str):
        problem = "current version or MAC is missing"
    if problem is not None:
        raise KeyConfigurationError(f"{path}: {problem}")
