"""The cover letter of an access package: what we hold, why, for how long, who sees it, rights.

Interface fixed for the access-package builder (guard/subjects/package.py); the text is made
from the same facts as the privacy notice (guard/subjects/facts.py), so the two never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

    from guard.config import Settings


@dataclass(frozen=True)
class LetterContext:
    """What one package holds: the letter describes exactly this."""

    tenant: str
    #: access | portability
    kind: str
    request_id: str
    received_at: datetime
    due_at: datetime
    #: The customer's name as held (the letter travels inside the encrypted package).
    customer_name: str | None
    #: Record fields that hold a value for this customer (``full_name``, ``notes`` ...).
    fields_held: tuple[str, ...]
    #: Audit events about the customer in the package.
    audit_events: int
    #: Incidents that affected the customer.
    incidents: int
    #: The other files in the package, by name.
    files: tuple[str, ...]


def cover_letter(settings: Settings, context: LetterContext) -> str:
    """The letter (plain text, Markdown headings) to put at the top of the package."""
    raise NotImplementedError("written by the compliance-documents work")
