"""Errors of data subject requests: they name fields, counts and request ids, never data.

A request that finds no customer says only that no customer of the caller's tenant matches:
the blind indexes are per tenant, and the answer must not help anyone probe another tenant.
"""

from __future__ import annotations

from guard.errors import GuardError, InvalidInputError


class SubjectError(GuardError):
    """Base of the errors of data subject requests."""

    status_code = 422
    type_slug = "invalid-input"


class SubjectInputError(InvalidInputError):
    """A request field guard will not accept, named in the message (never its value)."""


class CustomerNotFoundError(SubjectError):
    """No customer of the caller's tenant matches the identifier given."""

    status_code = 404
    type_slug = "not-found"


class AmbiguousCustomerError(SubjectError):
    """Several customers of the tenant share the identifier (a shared email, a family phone)."""

    status_code = 409
    type_slug = "ambiguous-customer"


class CustomerErasedError(SubjectError):
    """The customer's record was erased: only its tombstone remains (as records answer 410)."""

    status_code = 410
    type_slug = "record-erased"


class RequestNotFoundError(SubjectError):
    """No subject request with this id in the caller's tenant (another tenant's is not found)."""

    status_code = 404
    type_slug = "not-found"


class RequestConflictError(SubjectError):
    """The request's state or kind does not allow this action (closed, wrong kind, extended)."""

    status_code = 409
    type_slug = "request-conflict"


class RequestClosedError(RequestConflictError):
    """The request is closed: it refuses every further action."""

    type_slug = "request-closed"


class LegalHoldError(RequestConflictError):
    """A legal hold covers the customer: erasure is refused (GDPR Art. 17(3)(e))."""

    type_slug = "legal-hold"


class PackageNotFoundError(SubjectError):
    """The request has no stored package (none made yet, or deleted)."""

    status_code = 404
    type_slug = "package-not-found"


class PackageExpiredError(SubjectError):
    """The package's retention period is over: make a new one (with a new passphrase)."""

    status_code = 410
    type_slug = "package-expired"
