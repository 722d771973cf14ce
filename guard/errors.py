"""The GuardError tree. Every failure guard reports on purpose is one of these.

Messages are written for the person who has to fix the problem and never carry raw input
values: a message may name a field, a line number or an entity type, never the text itself.
"""

from __future__ import annotations


class GuardError(Exception):
    """Base of every error guard raises on purpose; ``status_code`` is the HTTP mapping."""

    status_code: int = 500
    type_slug: str = "internal"

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code

    def __str__(self) -> str:
        return self.message


class ConfigurationError(GuardError):
    """A setting, policy file or model that guard cannot start with."""

    status_code = 500
    type_slug = "configuration"


class ModelNotAvailableError(ConfigurationError):
    """The NLP model is missing or broken; never silently downloaded."""

    type_slug = "model-not-available"


class PolicyError(ConfigurationError):
    """A policy file (recognizers, redaction, tenants) failed validation."""

    type_slug = "invalid-policy"


class InvalidInputError(GuardError):
    """Input that guard will not process, with a message naming where it is wrong."""

    status_code = 422
    type_slug = "invalid-input"


class InputTooLargeError(InvalidInputError):
    """Input over a configured size limit."""

    status_code = 413
    type_slug = "input-too-large"


class TokenError(GuardError):
    """A reversible token that cannot be revealed: tampered, foreign, or malformed."""

    status_code = 422
    type_slug = "invalid-token"


class AnalysisBudgetError(InvalidInputError):
    """A text whose analysis did not finish within the per-request time budget.

    The work is stopped (its worker process is ended), nothing of the text is returned, and the
    request fails: a detector that runs out of time never lets text through unanalysed.
    """

    status_code = 422
    type_slug = "analysis-budget-exceeded"


class DetectionFailedError(GuardError):
    """A recognizer could not finish on this text (e.g. a regex timed out): fail closed."""

    status_code = 422
    type_slug = "detection-failed"


class ServiceBusyError(GuardError):
    """Too much work queued already; the client should retry after ``retry_after`` seconds."""

    status_code = 503
    type_slug = "busy"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after
