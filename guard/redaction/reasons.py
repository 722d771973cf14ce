"""Stated reasons (a reveal's, an identity check, a legal hold's) as they may be stored.

Officers and supervisors write reasons in free text, and they name the customer: "Ms
Vandersloot called about her refund". A reason is therefore redacted as a message to a customer
would be, and then every value the caller knows is personal data (the record's own name, email,
phone) is replaced whether or not detection found it: a rare name is exactly what a statistical
model may miss. One implementation for every door (API, console, CLI).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping

    from guard.detection.executor import Analyzer
    from guard.redaction.service import Redactor

#: Longest reason kept in an audit event's details.
AUDIT_REASON_CHARS = 500
#: Known values shorter than this are not scrubbed (they would hit ordinary words).
_MIN_KNOWN = 3


class RedactReason(Protocol):
    """Redact a stated reason of ``tenant``, scrubbing ``known`` values (value -> tag)."""

    def __call__(self, text: str, tenant: str, known: Mapping[str, str]) -> str:
        """The reason as it may be stored and audited."""
        ...


def redact_reason(
    analysis: Analyzer,
    redactor: Redactor,
    text: str,
    *,
    tenant: str,
    known: Mapping[str, str] | None = None,
    limit: int = AUDIT_REASON_CHARS,
) -> str:
    """``text`` with PII redacted (the ``message`` channel) and ``known`` values scrubbed."""
    entities = analysis.analyze(text, tenant=tenant)
    redacted = redactor.redact_text(text, entities, channel="message", tenant=tenant)
    return scrub_known(redacted.text, known or {})[:limit]


def reason_redactor(
    analysis: Analyzer, redactor: Redactor, *, limit: int = AUDIT_REASON_CHARS
) -> RedactReason:
    """:func:`redact_reason` bound to an analyzer and a redactor, for services to hold."""

    def redact(text: str, tenant: str, known: Mapping[str, str]) -> str:
        return redact_reason(analysis, redactor, text, tenant=tenant, known=known, limit=limit)

    return redact


def scrub_known(text: str, known: Mapping[str, str]) -> str:
    """``text`` with each known value (and each word of a known name) replaced by its tag."""
    values: dict[str, str] = {}
    for value, entity in known.items():
        cleaned = value.strip()
        if len(cleaned) >= _MIN_KNOWN:
            values[cleaned] = entity
        if entity == "PERSON":
            for part in re.split(r"[\s,]+", cleaned):
                if len(part) >= _MIN_KNOWN:
                    values.setdefault(part, entity)
    for value in sorted(values, key=len, reverse=True):
        pattern = re.compile(rf"(?<!\w){re.escape(value)}(?!\w)", re.IGNORECASE)
        text = pattern.sub(f"<{values[value]}>", text)
    return text
