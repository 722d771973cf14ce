"""Errors raised by guard.crypto: they name settings and paths, never key bytes or plaintext."""

from __future__ import annotations

from guard.errors import ConfigurationError, GuardError


class KeyConfigurationError(ConfigurationError):
    """Key material is missing, malformed or cannot be stored."""

    type_slug = "key-configuration"


class IntegrityError(GuardError):
    """A ciphertext failed authentication: wrong key, wrong context, tampered or truncated."""

    status_code = 422
    type_slug = "integrity"


class UnknownKeyVersionError(IntegrityError):
    """A wrapped key names a KEK version its provider does not hold.

    The version was never created, was retired, or the keyring was rolled back to a copy from
    before that version existed.
    """

    status_code = 500
    type_slug = "unknown-key-version"
