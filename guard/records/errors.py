"""Errors of the records capability: they name record ids and fields, never field values."""

from __future__ import annotations

from guard.crypto.errors import IntegrityError
from guard.errors import GuardError, InvalidInputError, PolicyError


class RecordNotFoundError(GuardError):
    """No record with this id in the caller's tenant (another tenant's record is not found)."""

    status_code = 404
    type_slug = "not-found"


class RecordErasedError(GuardError):
    """The record was erased: only its tombstone (id, status, timestamps) remains."""

    status_code = 410
    type_slug = "record-erased"


class RecordIntegrityError(IntegrityError):
    """A stored ciphertext or wrapped key failed authentication: tampered, moved or swapped."""

    status_code = 500
    type_slug = "record-integrity"


class RecordInputError(InvalidInputError):
    """A record field that guard will not store, named in the message."""


class ViewPolicyError(PolicyError):
    """``policies/views.yaml`` failed validation; the message names the entry."""
