"""Errors of the incidents capability: they name the file, rule, field or incident, never data."""

from __future__ import annotations

from guard.errors import GuardError


class RuleError(GuardError):
    """A detection rule file is not valid Sigma, or names a field guard does not log.

    The message names the file, the rule id (when known) and the field; the rules in force
    stay in force.
    """

    status_code = 422
    type_slug = "invalid-rule"


class RunbookError(GuardError):
    """A runbook template or notice template under audit/runbooks/ is malformed."""

    status_code = 422
    type_slug = "invalid-runbook"


class IncidentPolicyError(GuardError):
    """policies/incidents.yaml is malformed (the message names the field)."""

    status_code = 422
    type_slug = "invalid-policy"


class IncidentNotFoundError(GuardError):
    """No incident with this id visible to the caller."""

    status_code = 404
    type_slug = "incident-not-found"


class TransitionError(GuardError):
    """The requested status change is not allowed from the incident's current status."""

    status_code = 409
    type_slug = "invalid-transition"


class StepNotFoundError(GuardError):
    """The incident's runbook has no step with this id."""

    status_code = 404
    type_slug = "step-not-found"


class RuleExportError(GuardError):
    """The rules could not be converted for the requested SIEM backend."""

    status_code = 422
    type_slug = "rule-export-failed"
