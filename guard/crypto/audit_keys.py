"""Keys of the audit trail: the chain HMAC key, the identifier key and the checkpoint signer.

Threat: someone with write access to the audit tables (a DBA, a stolen backup restored with
edits, a compromised application host without the keys) rewrites history. SHA-256 chaining
alone does not stop them: they can recompute every hash. Each event therefore carries an
HMAC under a key derived from the master key, which the database never holds, and periodic
checkpoints are signed with an Ed25519 key whose public half lets anyone verify them. Customer
identifiers are replaced by keyed hashes (a separate derived key), so the trail can be searched
by customer without ever holding the raw id, and a table dump reveals no identifiers.
This is the only module that touches HMAC or Ed25519 for the audit trail.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from guard.crypto.errors import KeyConfigurationError
from guard.crypto.keys import load_master_key, write_new_secret_file
from guard.crypto.primitives import HMAC_KEY_BYTES, hmac_sha256

if TYPE_CHECKING:
    from guard.config import Settings
    from guard.crypto.keys import MasterKey

CHAIN_PURPOSE = b"guard/audit-chain/v1"
IDENTIFIER_PURPOSE = b"guard/audit-identifier/v1"
#: Ed25519 checkpoint key files inside ``keys_dir``.
SIGNING_KEY_FILENAME = "audit-signing.key"
PUBLIC_KEY_FILENAME = "audit-signing.pub"


def _public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id_of(public: Ed25519PublicKey) -> str:
    """A short stable id of a public key: the first 16 hex digits of SHA-256 of its raw bytes."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_signing_key(settings: Settings) -> Ed25519PrivateKey:
    """Load ``keys_dir/audit-signing.key``; in development create it (0600) on first use."""
    path = settings.keys_dir / SIGNING_KEY_FILENAME
    if not path.exists():
        if settings.env == "production":
            raise KeyConfigurationError(
                f"{path}: audit signing key is missing; it is required in production "
                "(create it with `openssl genpkey -algorithm ed25519`)"
            )
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            write_new_secret_file(path, pem, 0o600)
        except OSError as exc:
            raise KeyConfigurationError(
                f"{path}: cannot create audit signing key ({exc.strerror})"
            ) from None
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise KeyConfigurationError(
            f"{path}: cannot read audit signing key ({exc.strerror})"
        ) from None
    except (ValueError, TypeError):
        raise KeyConfigurationError(f"{path}: not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyConfigurationError(f"{path}: audit signing key must be Ed25519")
    public_path = settings.keys_dir / PUBLIC_KEY_FILENAME
    if not public_path.exists():
        with contextlib.suppress(OSError):
            write_new_secret_file(public_path, _public_pem(key.public_key()), 0o644)
    return key


def load_verify_key(settings: Settings) -> Ed25519PublicKey:
    """The checkpoint public key: ``keys_dir/audit-signing.pub``, else from the private key."""
    public_path = settings.keys_dir / PUBLIC_KEY_FILENAME
    if not public_path.exists():
        return load_signing_key(settings).public_key()
    try:
        pem = public_path.read_bytes()
    except OSError:
        raise KeyConfigurationError(f"{public_path}: cannot read audit public key") from None
    return public_key_from_pem(pem, source=str(public_path))


def public_key_from_pem(pem: bytes, *, source: str) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (a key file, or one handed over in an evidence bundle)."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyConfigurationError(f"{source}: cannot read audit public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyConfigurationError(f"{source}: audit public key must be Ed25519")
    return key


def signature_ok(key: Ed25519PublicKey, payload: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``key``'s Ed25519 signature over ``payload``."""
    try:
        key.verify(signature, payload)
    except InvalidSignature:
        return False
    return True


class AuditKeys:
    """Chain MAC, identifier hashing and checkpoint signing for the audit trail."""

    __slots__ = ("_chain_key", "_identifier_key", "_public", "_settings", "_signing")

    def __init__(
        self,
        master: MasterKey,
        *,
        signing_key: Ed25519PrivateKey | None = None,
        verify_key: Ed25519PublicKey | None = None,
        settings: Settings | None = None,
    ) -> None:
        self._chain_key = master.derive(CHAIN_PURPOSE, HMAC_KEY_BYTES)
        self._identifier_key = master.derive(IDENTIFIER_PURPOSE, HMAC_KEY_BYTES)
        self._signing = signing_key
        self._public = verify_key or (signing_key.public_key() if signing_key else None)
        self._settings = settings

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditKeys:
        """Keys as configured; the signing key is loaded (or created) on first use."""
        return cls(load_master_key(settings), settings=settings)

    def chain_mac(self, event_hash: str) -> str:
        """HMAC (hex) of an event hash under the chain key."""
        return hmac_sha256(self._chain_key, b"event", event_hash.encode("ascii")).hex()

    def chain_mac_ok(self, event_hash: str, mac: str) -> bool:
        """Whether ``mac`` is the chain HMAC of ``event_hash`` (constant time)."""
        return hmac.compare_digest(self.chain_mac(event_hash), mac)

    def identifier_hash(self, kind: str, value: str) -> str:
        """Keyed hash (hex) of an identifier of a kind, e.g. ``("customer", "C-1042")``."""
        return hmac_sha256(self._identifier_key, kind.encode("utf-8"), value.encode("utf-8")).hex()

    def _signer(self) -> Ed25519PrivateKey:
        if self._signing is None:
            if self._settings is None:
                raise KeyConfigurationError("no audit signing key was given")
            self._signing = load_signing_key(self._settings)
            self._public = self._public or self._signing.public_key()
        return self._signing

    def _verifier(self) -> Ed25519PublicKey:
        if self._public is None:
            if self._settings is None:
                raise KeyConfigurationError("no audit public key was given")
            self._public = load_verify_key(self._settings)
        return self._public

    @property
    def key_id(self) -> str:
        """Id of the checkpoint verification key."""
        return key_id_of(self._verifier())

    @property
    def signing_key_id(self) -> str:
        """Id of the key checkpoints are signed with now."""
        return key_id_of(self._signer().public_key())

    def sign_checkpoint(self, payload: bytes) -> bytes:
        """Ed25519 signature of a canonical checkpoint payload."""
        return self._signer().sign(payload)

    def checkpoint_signature_ok(self, payload: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is a valid Ed25519 signature of ``payload``."""
        try:
            self._verifier().verify(signature, payload)
        except InvalidSignature:
            return False
        return True

    def __repr__(self) -> str:
        return "AuditKeys(chain_key=<redacted>, identifier_key=<redacted>, signing_key=<redacted>)"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("AuditKeys cannot be pickled")
