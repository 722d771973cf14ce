"""Request and response bodies of the data subject requests API (pydantic)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from guard.subjects.deadlines import MAX_EXTENSION_MONTHS

Kind = Literal["access", "portability", "erasure"]
Status = Literal["open", "fulfilled", "rejected"]
Resolution = Literal["fulfilled", "rejected"]
#: A stated reason (identity check, extension, closing) shorter than this is no reason.
MIN_REASON = 5
MAX_REASON = 1000
IDENTIFIERS = ("record_id", "email", "phone", "account_id")


class SubjectRequestCreate(BaseModel):
    """A request from a customer, found by exactly one identifier.

    ``identity_check``: how the officer checked it was them, a stated reason (redacted, the
    customer's own values scrubbed, before it is stored).
    """

    # The contract says what ``_exactly_one`` enforces: one identifier, no more.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"required": [name], "properties": {name: {"type": "string"}}}
                for name in IDENTIFIERS
            ]
        },
    )

    kind: Kind
    record_id: str | None = Field(default=None, min_length=1, max_length=36)
    email: str | None = Field(default=None, min_length=1, max_length=320)
    phone: str | None = Field(default=None, min_length=1, max_length=64)
    account_id: str | None = Field(default=None, min_length=1, max_length=500)
    identity_check: str = Field(min_length=MIN_REASON, max_length=MAX_REASON)
    #: When the customer's request arrived (default: now); not in the future, at most three
    #: months ago. With a time zone (``Z`` for UTC).
    received_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SubjectRequestCreate:
        given = [name for name in IDENTIFIERS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of: record_id, email, phone, account_id")
        return self


class PackageInfo(BaseModel):
    """The stored, encrypted package of a request: never its content or passphrase."""

    created_at: datetime
    expires_at: datetime
    sha256: str
    size: int


class SubjectRequestRead(BaseModel):
    """A request, its clock and its package (if any).

    ``time_left_seconds`` runs to ``due_at`` (negative once past) and is null once closed;
    ``overdue``: open and past the deadline, or closed after it.
    """

    id: str
    kind: Kind
    status: Status
    record_id: str
    identity_check: str
    opened_by: str
    received_at: datetime
    opened_at: datetime
    due_at: datetime
    time_left_seconds: int | None
    overdue: bool
    extended: bool
    extension_reason: str | None
    closed_at: datetime | None
    closed_by: str | None
    outcome: str | None
    package: PackageInfo | None


class SubjectRequestPage(BaseModel):
    """A page of requests, by due date; pass ``next_cursor`` back as ``cursor``."""

    requests: list[SubjectRequestRead]
    next_cursor: str | None


class ExtendRequest(BaseModel):
    """Extend the deadline by up to two further months (once, within the first month)."""

    model_config = ConfigDict(extra="forbid")

    months: int = Field(default=MAX_EXTENSION_MONTHS, ge=1, le=MAX_EXTENSION_MONTHS)
    reason: str = Field(min_length=MIN_REASON, max_length=MAX_REASON)


class CloseRequest(BaseModel):
    """Close a request: fulfilled (answered) or rejected (refused), and why (redacted)."""

    model_config = ConfigDict(extra="forbid")

    outcome: Resolution
    reason: str = Field(min_length=MIN_REASON, max_length=MAX_REASON)


class EraseRequest(BaseModel):
    """Erasure cannot be undone: the body must say so (``{"confirm": true}``)."""

    model_config = ConfigDict(extra="forbid")

    confirm: bool

    @model_validator(mode="after")
    def _confirmed(self) -> EraseRequest:
        if self.confirm is not True:
            raise ValueError("confirm must be true: erasure crypto-shreds the record for good")
        return self


class PackageFileRead(BaseModel):
    """One file inside the package, as its manifest lists it."""

    name: str
    sha256: str
    size: int


class PackageCreated(BaseModel):
    """A new package: the passphrase is shown here once, and stored nowhere."""

    request: SubjectRequestRead
    package: PackageInfo
    files: list[PackageFileRead]
    audit_events: int
    incidents: int
    #: Give it to the customer by another channel than the archive (a call, a letter).
    passphrase: str
    notice: str
