"""Errors of the audit capability: they name a field or a sequence number, never a value."""

from __future__ import annotations

from guard.errors import GuardError, InvalidInputError


class AuditInputError(InvalidInputError):
    """An audit event that guard refuses to record (missing field, payload-like key, ...)."""

    type_slug = "invalid-audit-event"


class AuditStoreError(GuardError):
    """The audit store could not append an event; the caller's action must not proceed."""

    status_code = 503
    type_slug = "audit-unavailable"
