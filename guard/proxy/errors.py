"""Errors of the tool proxy: they name the tool and argument, never a value or an upstream body."""

from __future__ import annotations

from guard.errors import GuardError


class ToolNotFoundError(GuardError):
    """No tool of this name in policies/tools.yaml."""

    status_code = 404
    type_slug = "tool-not-found"


class ToolViewMissingError(GuardError):
    """The caller's role may call the tool but has no view of its responses: nothing is shown."""

    status_code = 403
    type_slug = "forbidden"


class UpstreamError(GuardError):
    """The upstream failed (down, error status, not JSON, too large): nothing of it is returned."""

    status_code = 502
    type_slug = "upstream-failed"


class UpstreamTimeoutError(UpstreamError):
    """The upstream did not answer within the tool's timeout."""

    status_code = 504
    type_slug = "upstream-timeout"


class UpstreamNotFoundError(GuardError):
    """The upstream answered 404: it holds no such object (e.g. an unknown customer id)."""

    status_code = 404
    type_slug = "not-found"


class ArgumentRefusedError(GuardError):
    """An argument of a tool that sends data out carries a secret or another customer's data."""

    status_code = 422
    type_slug = "argument-refused"
