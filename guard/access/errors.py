"""Errors of authentication and authorization; messages never carry a key or a token."""

from __future__ import annotations

from guard.errors import GuardError


class AuthenticationError(GuardError):
    """The credentials are missing, malformed, unknown, expired, revoked or forged."""

    status_code = 401
    type_slug = "unauthenticated"
    #: The ``reason`` detail of the audit event that records the refusal.
    audit_reason = "unauthenticated"


class PermissionDeniedError(GuardError):
    """An authenticated principal asked for something its role may not do."""

    status_code = 403
    type_slug = "forbidden"


class PrincipalNotFoundError(GuardError):
    """No API key has the id given."""

    status_code = 404
    type_slug = "not-found"


class IssuerTenantError(AuthenticationError):
    """A valid token whose tenant is not one its issuer may name (GUARD_JWT_ISSUER_TENANTS)."""

    audit_reason = "tenant-not-allowed"


class AuthenticationThrottledError(GuardError):
    """Too many failed authentications from this client; retry after ``retry_after`` seconds."""

    status_code = 429
    type_slug = "too-many-requests"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
