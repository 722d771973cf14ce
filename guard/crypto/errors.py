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
