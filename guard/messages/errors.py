"""Errors of the message guard: they name a field or a cause, never a value of the message."""

from __future__ import annotations

from guard.errors import GuardError


class LookupUnavailableError(GuardError):
    """The blind-index lookup could not run (database unreachable): the check fails closed.

    A message that could not be checked against the tenant's customers is never allowed.
    """

    status_code = 503
    type_slug = "lookup-unavailable"
