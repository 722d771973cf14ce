"""Errors raised by guard.storage: they name the database backend, never its credentials."""

from __future__ import annotations

from guard.errors import ConfigurationError


class StorageError(ConfigurationError):
    """The database cannot be reached, migrated or used as configured."""

    type_slug = "storage"
