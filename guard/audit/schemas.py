"""Pydantic I/O of the audit trail: review filters, events as read, pages, verify reports."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Decision = Literal["allow", "deny"]
Outcome = Literal["success", "failure", "error"]
#: ``pruned``: a range asked for reaches into the prefix retention removed under a signed seal.
Finding = Literal["edited", "deleted", "inserted", "reordered", "truncated", "pruned"]
ExportFormat = Literal["jsonl", "csv"]
#: The largest sequence number a cursor may name: ``seq`` is a signed 64-bit column.
MAX_SEQ = 2**63 - 1


class AuditFilters(BaseModel):
    """What a compliance review looks for; every field narrows the result (AND)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    since: datetime | None = None
    until: datetime | None = None
    principal: str | None = None
    role: str | None = None
    tenant: str | None = None
    action: str | None = None
    decision: Decision | None = None
    outcome: Outcome | None = None
    #: guard's own id of one request: every event of that request, of one principal only.
    request_id: str | None = None
    #: The raw customer id; it is compared by its keyed hash and never stored or echoed.
    customer: str | None = Field(default=None, repr=False)


class AuditEventRead(BaseModel):
    """One event as stored (customer is the keyed hash)."""

    seq: int
    ts: datetime
    principal: str | None
    role: str | None
    tenant: str | None
    action: str
    resource: str
    decision: str
    outcome: str
    request_id: str | None
    customer: str | None
    entity_counts: dict[str, int]
    details: dict[str, str | int | bool]
    prev_hash: str
    hash: str
    hmac: str


class AuditPage(BaseModel):
    """A page of events in sequence order; pass ``next_cursor`` back for the next page."""

    events: list[AuditEventRead]
    next_cursor: int | None


class VerifyReport(BaseModel):
    """Outcome of verifying the chain: the first problem found, if any.

    After retention pruned the oldest events, verification starts at ``verified_from_seq``
    (the event after ``pruned_through``), linked to the hash the newest signed prune seal holds.
    """

    ok: bool
    events_checked: int
    checkpoints_checked: int
    first_bad_seq: int | None = None
    finding: Finding | None = None
    detail: str | None = None
    #: The first sequence number verified: 1, or the one after the newest prune seal.
    verified_from_seq: int | None = None
    #: Events 1..pruned_through were removed by retention under signed seals (None: none).
    pruned_through: int | None = None
    #: When the newest seal was made.
    pruned_at: datetime | None = None
    #: Prune seals whose signatures were checked.
    seals_checked: int = 0
