"""Thin, typed wrappers around the few primitives guard uses (HKDF, HMAC, AES-SIV, AES-GCM, scrypt).

Threat: misuse of raw primitives (reused keys across purposes, ambiguous MAC inputs,
unauthenticated encryption) leaks or forges redacted values. Everything here is authenticated
or keyed, inputs to MACs are length-prefixed so that ``("ab", "c")`` and ``("a", "bc")`` never
collide, and a failed authentication raises :class:`IntegrityError` without saying why.
This module and its siblings are the only place in guard that imports ``cryptography``.
"""

from __future__ import annotations

import hmac
import os
from hashlib import sha256
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from guard.crypto.errors import IntegrityError

if TYPE_CHECKING:
    from collections.abc import Sequence

#: AES-256-SIV takes two 256-bit keys (MAC key + CTR key).
SIV_KEY_BYTES = 64
#: HMAC-SHA256 keys: one hash block's worth of entropy is plenty.
HMAC_KEY_BYTES = 32
#: Master keys shorter than this are refused.
MIN_MASTER_KEY_BYTES = 32
#: AES-256-GCM: key, nonce (random, 96 bits) and tag sizes.
GCM_KEY_BYTES = 32
GCM_NONCE_BYTES = 12
GCM_TAG_BYTES = 16


def hkdf_sha256(master: bytes, *, info: bytes, length: int) -> bytes:
    """Derive ``length`` bytes bound to ``info`` from ``master`` with HKDF-SHA256."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(master)


def frame(parts: Sequence[bytes]) -> bytes:
    """Length-prefix and join ``parts``: the unambiguous encoding of MAC inputs and AAD."""
    return b"".join(len(part).to_bytes(8, "big") + part for part in parts)


def hmac_sha256(key: bytes, *parts: bytes) -> bytes:
    """HMAC-SHA256 over length-prefixed ``parts`` (unambiguous concatenation)."""
    return hmac.new(key, frame(parts), sha256).digest()


def siv_encrypt(key: bytes, plaintext: bytes, associated_data: Sequence[bytes]) -> bytes:
    """Deterministically encrypt with AES-256-SIV, authenticating ``associated_data``."""
    return AESSIV(key).encrypt(plaintext, list(associated_data))


def siv_decrypt(key: bytes, ciphertext: bytes, associated_data: Sequence[bytes]) -> bytes:
    """Decrypt an AES-256-SIV ciphertext; any mismatch raises :class:`IntegrityError`."""
    try:
        return AESSIV(key).decrypt(ciphertext, list(associated_data))
    except (InvalidTag, ValueError):
        raise IntegrityError("ciphertext failed authentication") from None


def gcm_encrypt(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """AES-256-GCM with a fresh random nonce; returns ``nonce || ciphertext || tag``."""
    nonce = os.urandom(GCM_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


def gcm_decrypt(key: bytes, blob: bytes, associated_data: bytes) -> bytes:
    """Open ``nonce || ciphertext || tag``; any mismatch or truncation raises IntegrityError."""
    if len(blob) < GCM_NONCE_BYTES + GCM_TAG_BYTES:
        raise IntegrityError("ciphertext failed authentication")
    try:
        return AESGCM(key).decrypt(blob[:GCM_NONCE_BYTES], blob[GCM_NONCE_BYTES:], associated_data)
    except (InvalidTag, ValueError):
        raise IntegrityError("ciphertext failed authentication") from None


def scrypt_derive(passphrase: bytes, *, salt: bytes, n: int, r: int, p: int) -> bytes:
    """A 32-byte key from a passphrase with scrypt (memory-hard, slows guessing)."""
    return Scrypt(salt=salt, length=GCM_KEY_BYTES, n=n, r=r, p=p).derive(passphrase)
