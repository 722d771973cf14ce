"""Cryptography for guard: the only package that imports ``cryptography``.

Threat model in short: keys never leave these objects in clear (masked ``repr``, no pickling),
each key serves exactly one purpose and tenant, and every ciphertext is authenticated.
"""

from __future__ import annotations

from guard.crypto.errors import IntegrityError, KeyConfigurationError
from guard.crypto.keys import (
    KEY_ENV_VAR,
    MasterKey,
    RedactionKeys,
    load_master_key,
    parse_master_key,
)
from guard.crypto.primitives import hkdf_sha256, hmac_sha256, siv_decrypt, siv_encrypt

__all__ = [
    "KEY_ENV_VAR",
    "IntegrityError",
    "KeyConfigurationError",
    "MasterKey",
    "RedactionKeys",
    "hkdf_sha256",
    "hmac_sha256",
    "load_master_key",
    "parse_master_key",
    "siv_decrypt",
    "siv_encrypt",
]
