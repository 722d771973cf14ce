"""Request and response bodies of the incidents API (pydantic)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["open", "triaged", "contained", "resolved", "closed"]
Severity = Literal["informational", "low", "medium", "high", "critical"]
Party = Literal["authority", "customers"]
MAX_NOTE = 4000


class Deadline(BaseModel):
    """A regulatory clock: when it runs out, the time left, and whether it was met."""

    name: str
    basis: str
    due_at: datetime
    seconds_left: int
    overdue: bool
    met_at: datetime | None = None


class Evidence(BaseModel):
    """The audit events behind the incident and their verification right after it opened.

    ``chain_ok`` is None until the scanner has sealed the evidence (moments after opening).
    """

    first_seq: int
    last_seq: int
    chain_ok: bool | None
    chain_detail: str
    chain_checked_at: datetime | None


class IncidentSummary(BaseModel):
    """An incident in a list."""

    id: str
    reference: str
    title: str
    rule_id: str
    severity: Severity
    status: Status
    tenant: str | None
    opened_at: datetime
    became_aware_at: datetime
    last_event_at: datetime
    affected_customers: int
    hits: int
    deadlines: list[Deadline]


class TimelineEntry(BaseModel):
    """One line of the incident's timeline."""

    ts: datetime
    kind: str
    actor: str | None
    facts: dict[str, str | int | bool | None]
    note: str | None = None


class RunbookStepState(BaseModel):
    """A runbook step and whether (and by whom) it was done."""

    id: str
    phase: str
    text: str
    links: list[str]
    done: bool
    done_at: datetime | None = None
    done_by: str | None = None


class IncidentDetail(IncidentSummary):
    """An incident with its evidence, group, categories, runbook checklist and timeline."""

    description: str
    group: dict[str, str | None]
    entity_types: list[str]
    data_categories: list[str]
    actions: list[str]
    evidence: Evidence
    runbook: str
    runbook_title: str
    checklist: list[RunbookStepState]
    timeline: list[TimelineEntry]
    authority_notified_at: datetime | None
    customers_notified_at: datetime | None
    closed_at: datetime | None


class IncidentPage(BaseModel):
    """A page of incidents, newest first; pass ``next_cursor`` back for the next page."""

    incidents: list[IncidentSummary]
    next_cursor: int | None


class TransitionRequest(BaseModel):
    """Move an incident forward (open → triaged → contained → resolved → closed)."""

    model_config = ConfigDict(extra="forbid")

    status: Status
    note: str | None = Field(default=None, max_length=MAX_NOTE)


class NoteRequest(BaseModel):
    """A note on the incident's timeline (redacted before it is stored)."""

    model_config = ConfigDict(extra="forbid")

    note: str = Field(min_length=1, max_length=MAX_NOTE)


class StepRequest(BaseModel):
    """Tick (or untick) a runbook step."""

    model_config = ConfigDict(extra="forbid")

    done: bool = True


class NotifiedRequest(BaseModel):
    """Record that a party was notified (stops that deadline's clock)."""

    model_config = ConfigDict(extra="forbid")

    party: Party


class CustomerNoticeRequest(BaseModel):
    """Render the notice to affected customers; a reason is required and audited."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=500)
    record_ids: list[str] | None = Field(default=None, max_length=1000)


class Notice(BaseModel):
    """A notification draft."""

    party: Party
    record_id: str | None = None
    text: str


class CustomerNotices(BaseModel):
    """Per-customer drafts, and how many affected customers are not guard records."""

    notices: list[Notice]
    unresolved: int


class ResolvedCustomers(BaseModel):
    """The affected customers as record ids; hashes that match no record are counted."""

    record_ids: list[str]
    unresolved: int


class ScanResult(BaseModel):
    """What a scan did."""

    events: int
    hits: int
    opened: int
    updated: int
    cursor: int
    seconds: float
