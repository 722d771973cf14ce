"""Pydantic I/O of retention: the schedule, runs and legal holds (``/v1/retention``)."""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - pydantic reads the annotations at run time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from guard.subjects.holds import MAX_REASON, MIN_REASON

HoldScope = Literal["customer", "incident"]


class HoldCreate(BaseModel):
    """Place a legal hold on a customer (their record id) or an incident (its id)."""

    model_config = ConfigDict(extra="forbid")

    scope: HoldScope
    #: The record id (scope customer) or incident id (scope incident), of the caller's tenant.
    target: str = Field(min_length=1, max_length=36)
    #: Why (a matter, a request from counsel); personal data in it is redacted before storing.
    reason: str = Field(min_length=MIN_REASON, max_length=MAX_REASON, repr=False)


class HoldRead(BaseModel):
    """A legal hold; ``reason`` is the redacted text stored."""

    id: str
    scope: HoldScope
    target: str
    reason: str
    placed_by: str
    placed_at: datetime
    released_by: str | None
    released_at: datetime | None
    active: bool


class HoldList(BaseModel):
    """The caller's tenant's holds, newest first."""

    holds: list[HoldRead]


class PeriodRead(BaseModel):
    """How long one kind of data is kept in the caller's tenant."""

    kind: Literal["notes", "records", "audit", "subject_packages"]
    #: The period (``None``: kept until someone erases it).
    amount: int | None
    unit: str
    #: For people: "365 days", or "kept until erased".
    text: str
    #: A zero period removes everything of its kind at once (it needs a confirmation).
    zero: bool


class ScheduleRead(BaseModel):
    """The caller's tenant's retention schedule (policies/retention.yaml)."""

    tenant: str
    #: Whether the tenant has its own entry (else the default applies to every kind).
    own_entry: bool
    policy_sha256: str
    periods: list[PeriodRead]
    #: How often ``guard serve`` applies it, in seconds (0: the scheduler is off).
    interval_seconds: float


class RunRead(BaseModel):
    """One retention run, with what it removed in the caller's tenant (and in the audit trail).

    ``removed`` and ``held`` count per kind (``notes``, ``records``, ``subject_packages``) for
    the caller's tenant, and ``audit`` for the events pruned from the (global) audit trail.
    """

    id: str
    #: running | finished | failed (a failed run that was not closed is resumed by the next).
    status: str
    started_at: datetime
    finished_at: datetime | None
    started_by: str
    as_of: datetime
    policy_sha256: str
    removed: dict[str, int]
    held: dict[str, int]


class RunList(BaseModel):
    """Recent retention runs, newest first."""

    runs: list[RunRead]
