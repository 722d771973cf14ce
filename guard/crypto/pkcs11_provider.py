"""Key provider on a PKCS#11 token: the key-encryption keys live in an HSM and never leave it.

Threat: whoever obtains a KEK (a copied disk or backup, a memory dump, a compromised guard
process) can unwrap every data key wrapped under it, for as long as they keep the copy. Here
each KEK version is an AES-256 secret key generated inside the token (``CKA_SENSITIVE``, not
``CKA_EXTRACTABLE``, stored on the token as ``<GUARD_PKCS11_KEY_LABEL>-v<N>``). guard holds
only object handles and asks the token to encrypt and decrypt data keys with AES-256-GCM, so
the KEK is never in guard's memory: an attacker must keep using the HSM itself, with its PIN,
and loses access when the token or the PIN is taken away.

Wrapped keys are ``0x01 || iv (12 bytes, os.urandom) || ciphertext || tag (16 bytes)``, the
same layout as the local keyring's. Retiring a version destroys its object in the token: data
keys still wrapped under it could never be unwrapped again, so the current version is refused
and :mod:`guard.crypto.envelope` refuses while any data key still uses the version.

Sessions: PKCS#11 login state belongs to the process, not to a session (a second ``C_Login``
fails, a ``C_Logout`` logs every session out), so providers in one process share one login per
token, held while any of them is open, and each has its own read/write session, used under a
lock because a session runs one operation at a time. Another process may rotate: a version
this provider has not seen is looked up on the token again before it is called unknown. Two
rotations at the same moment may both create ``-v<N>``: new keys go under the object with the
smallest ``CKA_ID`` and unwrapping tries each, so no wrapped key is ever stranded.
"""

from __future__ import annotations

import hmac
import os
import re
import threading
import weakref
from contextlib import suppress
from dataclasses import dataclass
from hashlib import sha256
from typing import TYPE_CHECKING, Protocol, TypeVar, cast

from guard.crypto.errors import IntegrityError, KeyConfigurationError, UnknownKeyVersionError
from guard.crypto.primitives import GCM_KEY_BYTES, GCM_NONCE_BYTES, GCM_TAG_BYTES
from guard.crypto.providers import KeyVersionInfo

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from pkcs11 import Attribute, GCMParams, Mechanism, Session, Token
    from pydantic import SecretStr

    from guard.config import Settings

    class _Kek(Protocol):
        """A KEK object as guard uses it (python-pkcs11 mixes capabilities in per object)."""

        def encrypt(
            self, data: bytes, *, mechanism: Mechanism, mechanism_param: GCMParams
        ) -> bytes:
            """AES-GCM ``data`` inside the token."""

        def decrypt(
            self, data: bytes, *, mechanism: Mechanism, mechanism_param: GCMParams
        ) -> bytes:
            """Open ``data`` inside the token."""

        def destroy(self) -> None:
            """Delete the object from the token."""

        def __getitem__(self, key: Attribute) -> object: ...


_T = TypeVar("_T")

#: First byte of a wrapped key: the layout above.
WRAP_FORMAT = 1
_MIN_WRAPPED = 1 + GCM_NONCE_BYTES + GCM_TAG_BYTES
#: Random CKA_ID of each KEK object: orders duplicates of one version (concurrent rotations).
_KEY_ID_BYTES = 16
_VERSION = re.compile(r"[1-9][0-9]{0,8}")
_INSTALL_HINT = "install the hsm extra: pip install 'confidentiality-guard[hsm]'"


# ---------------------------------------------------------------------------- shared logins


@dataclass(eq=False)
class _Login:
    """The process's login to one token, held by an anchor session while ``users`` > 0."""

    anchor: Session | None
    pin_digest: bytes
    users: int = 0


_LOGINS: dict[tuple[str, str], _Login] = {}
_LOGINS_LOCK = threading.Lock()
#: Keys the PIN digest kept to check a second provider's PIN without a second C_Login.
_PIN_DIGEST_KEY = os.urandom(32)


def _pin_digest(pin: str) -> bytes:
    return hmac.new(_PIN_DIGEST_KEY, pin.encode("utf-8"), sha256).digest()


def _end_login(login: _Login) -> None:
    """Log out (closing the anchor session); call with ``_LOGINS_LOCK`` held."""
    import pkcs11  # noqa: PLC0415 - optional extra

    anchor, login.anchor = login.anchor, None
    if anchor is not None:
        with suppress(pkcs11.PKCS11Error):
            anchor.close()


def _release(key: tuple[str, str], login: _Login) -> None:
    with _LOGINS_LOCK:
        login.users -= 1
        if login.users <= 0:
            if _LOGINS.get(key) is login:
                del _LOGINS[key]
            _end_login(login)


def _close_quietly(session: Session) -> None:
    """Close a provider's session: on close(), or when the provider is collected unclosed."""
    import pkcs11  # noqa: PLC0415

    with suppress(pkcs11.PKCS11Error):
        session.close()


def _session_lost() -> tuple[type[Exception], ...]:
    """Errors after which the session (or the login, or the token) is gone, not the key."""
    import pkcs11  # noqa: PLC0415

    return (
        pkcs11.SessionHandleInvalid,
        pkcs11.SessionClosed,
        pkcs11.UserNotLoggedIn,
        pkcs11.DeviceRemoved,
        pkcs11.TokenNotPresent,
        pkcs11.DeviceError,
    )


# ---------------------------------------------------------------------------- the provider


class Pkcs11Provider:
    """A :class:`~guard.crypto.providers.KeyProvider` whose KEKs are objects on a PKCS#11 token."""

    name = "pkcs11"

    def __init__(self, *, library: Path, token_label: str, pin: SecretStr, key_label: str) -> None:
        self.library = library
        self.token_label = token_label
        self.key_label = key_label
        self._pin = pin
        self._lock = threading.Lock()
        self._session: Session | None = None
        self._login_key = (str(library), token_label)
        self._joined: _Login | None = None
        self._finalizer: weakref.finalize[..., Pkcs11Provider] | None = None
        #: Version -> its key objects, smallest CKA_ID first (more than one only after
        #: concurrent rotations); as of the last scan of the token.
        self._keys: dict[int, list[_Kek]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Pkcs11Provider:
        """The provider configured by ``GUARD_PKCS11_*``; the token is opened on first use."""
        try:
            import pkcs11  # noqa: PLC0415, F401 - optional extra, checked here
        except ImportError:
            raise KeyConfigurationError(
                f"GUARD_KEY_PROVIDER=pkcs11 needs python-pkcs11: {_INSTALL_HINT}"
            ) from None
        if settings.pkcs11_library is None:
            raise KeyConfigurationError(
                "GUARD_PKCS11_LIBRARY must name the PKCS#11 module "
                "(e.g. /usr/lib/softhsm/libsofthsm2.so) when GUARD_KEY_PROVIDER=pkcs11"
            )
        if settings.pkcs11_pin is None:
            raise KeyConfigurationError(
                "GUARD_PKCS11_PIN must be set (the token's user PIN) when GUARD_KEY_PROVIDER=pkcs11"
            )
        library = settings.pkcs11_library
        if len(library.parts) > 1 and not library.is_file():  # a bare name is dlopen's to find
            raise KeyConfigurationError(f"GUARD_PKCS11_LIBRARY: {library} does not exist")
        return cls(
            library=library,
            token_label=settings.pkcs11_token_label,
            pin=settings.pkcs11_pin,
            key_label=settings.pkcs11_key_label,
        )

    # ------------------------------------------------------------------ protocol

    def current_version(self) -> int:
        """The newest version on the token (looked up each time: another process may rotate)."""

        def newest() -> int:
            keys = self._scan()
            if not keys:
                raise KeyConfigurationError(
                    f"no KEK on token {self.token_label!r} with label prefix "
                    f"{self.key_label!r}; run `guard keys init`"
                )
            return max(keys)

        return self._call(newest, "listing KEKs")

    def versions(self) -> list[KeyVersionInfo]:
        """Every version on the token, oldest first (a destroyed version is simply gone)."""
        keys = self._call(self._scan, "listing KEKs")
        return [KeyVersionInfo(version=v, state="active") for v in sorted(keys)]

    def wrap(self, version: int, data_key: bytes, associated_data: bytes) -> bytes:
        """AES-256-GCM ``data_key`` in the token under KEK ``version``: ``0x01 || iv || ct``."""
        import pkcs11  # noqa: PLC0415

        def encrypt(keys: list[_Kek]) -> bytes:
            iv = os.urandom(GCM_NONCE_BYTES)
            params = pkcs11.GCMParams(iv, associated_data, GCM_TAG_BYTES * 8)
            ciphertext = keys[0].encrypt(
                data_key, mechanism=pkcs11.Mechanism.AES_GCM, mechanism_param=params
            )
            return bytes([WRAP_FORMAT]) + iv + ciphertext

        return self._call(lambda: self._with_keys(version, encrypt), "AES-GCM encryption")

    def unwrap(self, version: int, wrapped: bytes, associated_data: bytes) -> bytes:
        """Decrypt a wrapped data key in the token; any mismatch raises IntegrityError."""
        import pkcs11  # noqa: PLC0415

        not_the_data: tuple[type[Exception], ...] = (
            *_session_lost(),
            pkcs11.ObjectHandleInvalid,
            pkcs11.KeyHandleInvalid,
        )

        def decrypt(keys: list[_Kek]) -> bytes:
            if len(wrapped) < _MIN_WRAPPED or wrapped[0] != WRAP_FORMAT:
                raise IntegrityError("wrapped key failed authentication")
            iv, ciphertext = wrapped[1 : 1 + GCM_NONCE_BYTES], wrapped[1 + GCM_NONCE_BYTES :]
            params = pkcs11.GCMParams(iv, associated_data, GCM_TAG_BYTES * 8)
            for key in keys:  # one, unless two processes rotated at the same moment
                try:
                    plain = key.decrypt(
                        ciphertext, mechanism=pkcs11.Mechanism.AES_GCM, mechanism_param=params
                    )
                except not_the_data:
                    raise
                except pkcs11.PKCS11Error:
                    continue  # a wrong tag (SoftHSM says CKR_GENERAL_ERROR) or a bad length
                return plain
            raise IntegrityError("wrapped key failed authentication")

        return self._call(lambda: self._with_keys(version, decrypt), "AES-GCM decryption")

    def create_version(self) -> int:
        """Generate KEK ``max + 1`` inside the token (sensitive, non-extractable); return it."""
        from pkcs11 import Attribute, KeyType, MechanismFlag  # noqa: PLC0415

        def generate() -> int:
            number = max(self._scan(), default=0) + 1
            self._open().generate_key(
                KeyType.AES,
                GCM_KEY_BYTES * 8,
                id=os.urandom(_KEY_ID_BYTES),
                label=self._label(number),
                store=True,
                capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
                template={
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.PRIVATE: True,
                },
            )
            self._scan()
            return number

        return self._call(generate, "generating an AES-256 KEK")

    def retire(self, version: int) -> None:
        """Destroy KEK ``version`` in the token (refused for the current version)."""

        def destroy() -> None:
            keys = self._scan()
            if version not in keys:
                raise UnknownKeyVersionError(
                    f"KEK version {version} is not on token {self.token_label!r}"
                )
            if version == max(keys):
                raise KeyConfigurationError(
                    f"KEK version {version} is current; rotate before retiring it"
                )
            try:
                for key in keys[version]:
                    key.destroy()
            finally:
                self._keys.pop(version, None)

        self._call(destroy, f"destroying KEK version {version}")

    def close(self) -> None:
        """Close the session (and the shared login if this was its last user); reopens on use."""
        with self._lock:
            self._drop()

    # ------------------------------------------------------------------ internals

    def _label(self, version: int) -> str:
        return f"{self.key_label}-v{version}"

    def _parse_label(self, label: object) -> int | None:
        prefix = f"{self.key_label}-v"
        if not isinstance(label, str) or not label.startswith(prefix):
            return None
        number = label[len(prefix) :]
        return int(number) if _VERSION.fullmatch(number) else None

    def _call(self, operation: Callable[[], _T], action: str) -> _T:
        """Run ``operation`` under the lock; a lost session is reopened and tried once more.

        PKCS#11 errors leave as :class:`KeyConfigurationError` naming ``action``.
        """
        import pkcs11  # noqa: PLC0415

        lost = _session_lost()
        logged_out = (pkcs11.UserNotLoggedIn, pkcs11.DeviceRemoved, pkcs11.TokenNotPresent)
        with self._lock:
            for attempt in (1, 2):
                try:
                    return operation()
                except lost as exc:
                    self._drop(end_login=isinstance(exc, logged_out))
                    if attempt == 1:
                        continue
                    raise KeyConfigurationError(
                        f"token {self.token_label!r} is unavailable: {action} failed "
                        f"({type(exc).__name__})"
                    ) from None
                except pkcs11.PKCS11Error as exc:
                    raise KeyConfigurationError(
                        f"token {self.token_label!r}: {action} failed ({type(exc).__name__})"
                    ) from None
        raise AssertionError  # pragma: no cover - the loop returns or raises

    def _with_keys(self, version: int, operation: Callable[[list[_Kek]], _T]) -> _T:
        """Run ``operation`` on the objects of ``version``; stale handles are looked up again."""
        import pkcs11  # noqa: PLC0415

        keys = self._keys.get(version)
        if keys is not None:
            try:
                return operation(keys)
            except (pkcs11.ObjectHandleInvalid, pkcs11.KeyHandleInvalid):
                pass  # destroyed, maybe by another process: look again below
        keys = self._scan().get(version)  # or a version rotated in by another process
        if keys is None:
            raise UnknownKeyVersionError(
                f"KEK version {version} is not on token {self.token_label!r} (retired, "
                "never created, or a different token)"
            )
        return operation(keys)

    def _scan(self) -> dict[int, list[_Kek]]:
        """Read the KEK versions on the token into ``_keys``; return them."""
        import pkcs11  # noqa: PLC0415
        from pkcs11 import Attribute, KeyType, ObjectClass  # noqa: PLC0415

        session = self._open()
        template = {
            Attribute.CLASS: ObjectClass.SECRET_KEY,
            Attribute.KEY_TYPE: KeyType.AES,
            Attribute.TOKEN: True,
        }
        found: dict[int, list[tuple[bytes, _Kek]]] = {}
        for obj in list(session.get_objects(template)):
            if not isinstance(obj, pkcs11.EncryptMixin) or not isinstance(obj, pkcs11.DecryptMixin):
                continue  # not usable as a KEK whatever its label says
            attributes = obj.get_attributes([Attribute.LABEL, Attribute.ID])
            version = self._parse_label(attributes.get(Attribute.LABEL))
            if version is not None:
                key_id = attributes.get(Attribute.ID)
                found.setdefault(version, []).append((bytes(key_id or b""), cast("_Kek", obj)))
        self._keys = {
            version: [obj for _, obj in sorted(pairs, key=lambda pair: pair[0])]
            for version, pairs in found.items()
        }
        return self._keys

    def _open(self) -> Session:
        """The provider's R/W session, opened (and the token logged in) on first use."""
        if self._session is not None:
            return self._session
        import pkcs11  # noqa: PLC0415

        try:
            lib = pkcs11.lib(str(self.library))
        except pkcs11.PKCS11Error as exc:
            raise KeyConfigurationError(
                f"GUARD_PKCS11_LIBRARY: cannot load {self.library} as a PKCS#11 module ({exc})"
            ) from None
        try:
            token = lib.get_token(token_label=self.token_label)
        except pkcs11.NoSuchToken:
            raise KeyConfigurationError(
                f"GUARD_PKCS11_TOKEN_LABEL: no token labelled {self.token_label!r} "
                f"in {self.library}"
            ) from None
        except pkcs11.MultipleTokensReturned:
            raise KeyConfigurationError(
                f"GUARD_PKCS11_TOKEN_LABEL: more than one token is labelled {self.token_label!r}"
            ) from None
        except pkcs11.PKCS11Error as exc:
            raise KeyConfigurationError(
                f"{self.library}: cannot list tokens ({type(exc).__name__})"
            ) from None
        key = self._login_key
        login = self._login(token, key)
        try:
            session = token.open(rw=True)
        except pkcs11.PKCS11Error as exc:
            _release(key, login)
            raise KeyConfigurationError(
                f"token {self.token_label!r}: cannot open a read/write session "
                f"({type(exc).__name__})"
            ) from None
        self._session, self._joined = session, login
        # Collected without close(): the session closes; the login share lasts until exit
        # (a finalizer must not take _LOGINS_LOCK, which its thread may already hold).
        self._finalizer = weakref.finalize(self, _close_quietly, session)
        return session

    def _login(self, token: Token, key: tuple[str, str]) -> _Login:
        """Join the process's login to ``token``, logging in with the PIN if nobody has."""
        import pkcs11  # noqa: PLC0415

        pin = self._pin.get_secret_value()
        digest = _pin_digest(pin)
        wrong_pin = KeyConfigurationError(
            f"GUARD_PKCS11_PIN is not the user PIN of token {self.token_label!r}"
        )
        with _LOGINS_LOCK:
            login = _LOGINS.get(key)
            if login is None:
                try:
                    anchor = token.open(user_pin=pin)
                except (pkcs11.PinIncorrect, pkcs11.PinInvalid, pkcs11.PinLenRange):
                    raise wrong_pin from None
                except pkcs11.PinLocked:
                    raise KeyConfigurationError(
                        f"token {self.token_label!r}: the user PIN is locked"
                    ) from None
                except pkcs11.UserAlreadyLoggedIn:
                    raise KeyConfigurationError(
                        f"token {self.token_label!r} is already logged in by another part of "
                        "this process; guard cannot check GUARD_PKCS11_PIN"
                    ) from None
                except pkcs11.PKCS11Error as exc:
                    raise KeyConfigurationError(
                        f"token {self.token_label!r}: login failed ({type(exc).__name__})"
                    ) from None
                login = _Login(anchor=anchor, pin_digest=digest)
                _LOGINS[key] = login
            elif not hmac.compare_digest(login.pin_digest, digest):
                raise wrong_pin
            login.users += 1
            return login

    def _drop(self, *, end_login: bool = False) -> None:
        """Forget the session and handles (call with the lock held); the next call reopens.

        ``end_login``: the token logged the process out (or went away), so the shared login is
        dead for every provider: forget it too, and the next call logs in again.
        """
        finalizer, self._finalizer, self._session = self._finalizer, None, None
        login, self._joined = self._joined, None
        self._keys = {}
        if finalizer is not None:
            finalizer()
        if login is None:
            return
        if end_login:
            with _LOGINS_LOCK:
                if _LOGINS.get(self._login_key) is login:
                    del _LOGINS[self._login_key]
                _end_login(login)
        _release(self._login_key, login)

    def __repr__(self) -> str:
        return f"Pkcs11Provider(token={self.token_label!r}, key_label={self.key_label!r})"

    def __reduce__(self) -> tuple[object, ...]:
        # A session, a login and a PIN do not travel: each process opens its own.
        raise TypeError("Pkcs11Provider cannot be pickled")
