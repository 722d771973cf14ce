"""Errors of authentication and authorization; messages never carry a key or a token."""

from __future__ import annotations

from guard.errors import GuardError


class AuthenticationError(GuardError):
    """The credentials are missing, malformed, unknown, expired, revoked or forged."""

    status_code = 401
    type_slug = "unauthenticated"


class PermissionDeniedError(GuardError):
    """An authenticated principal asked for something its role may not do."""

    status_code = 403
    type_slug = "forbidden"


class PrincipalNotFoundError(GuardError):
    """No API key has the id given."""

    status_code = 404
    type_slug = "not-found"
