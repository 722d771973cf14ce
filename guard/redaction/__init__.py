"""Redaction: operators, the redaction policy, and text / JSON redaction."""

from __future__ import annotations

from guard.redaction.operators import (
    Operator,
    OperatorContext,
    OperatorRegistry,
    default_registry,
    reveal_text,
    reveal_token,
)
from guard.redaction.policy import RedactionPolicy, load_redaction_policy, parse_redaction_policy
from guard.redaction.service import (
    JsonRedactedItem,
    RedactedItem,
    RedactionResult,
    Redactor,
)

__all__ = [
    "JsonRedactedItem",
    "Operator",
    "OperatorContext",
    "OperatorRegistry",
    "RedactedItem",
    "RedactionPolicy",
    "RedactionResult",
    "Redactor",
    "default_registry",
    "load_redaction_policy",
    "parse_redaction_policy",
    "reveal_text",
    "reveal_token",
]
