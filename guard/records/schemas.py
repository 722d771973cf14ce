"""Request and response bodies of the records API (pydantic)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_TEXT = 500
MAX_NOTES = 100_000
MAX_JSON_KEYS = 100
#: Nesting allowed inside ``account`` and ``extra`` (objects and arrays).
MAX_JSON_DEPTH = 8


def _depth(value: object, level: int = 0) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _check_mapping(value: dict[str, Any] | None, *, field: str) -> dict[str, Any] | None:
    if value is None:
        return value
    if len(value) > MAX_JSON_KEYS:
        raise ValueError(f"{field} has more than {MAX_JSON_KEYS} keys")
    if _depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"{field} is nested more than {MAX_JSON_DEPTH} levels deep")
    return value


class RecordFields(BaseModel):
    """The fields of a customer record, all optional."""

    model_config = ConfigDict(extra="forbid")

    full_name: str | None = Field(default=None, max_length=MAX_TEXT)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=64)
    postal_address: str | None = Field(default=None, max_length=MAX_TEXT)
    date_of_birth: date | None = None
    #: Account data, e.g. ``{"account_id": "AC-1234", "plan": "pro"}``; searchable by account_id.
    account: dict[str, Any] | None = None
    notes: str | None = Field(default=None, max_length=MAX_NOTES)
    extra: dict[str, Any] | None = None

    @field_validator("account")
    @classmethod
    def _account_id_is_text(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and "account_id" in value:
            account_id = value["account_id"]
            if not isinstance(account_id, str) or not 0 < len(account_id) <= MAX_TEXT:
                raise ValueError("account.account_id must be a non-empty string")
        return _check_mapping(value, field="account")

    @field_validator("extra")
    @classmethod
    def _extra_size(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _check_mapping(value, field="extra")


class RecordCreate(RecordFields):
    """A new customer record."""


class RecordUpdate(RecordFields):
    """Changed fields only: a field sent as ``null`` is cleared, a field left out is kept."""


class RecordSummary(BaseModel):
    """A record's metadata: what lists and tombstones show, nothing decrypted."""

    id: str
    status: Literal["active", "erased"]
    created_at: datetime
    updated_at: datetime


class RecordRead(RecordSummary):
    """A record as the caller's role may see it (``fields`` holds only visible fields)."""

    view: str
    fields: dict[str, Any]
    request_id: str


class RecordReveal(RecordSummary):
    """The full clear record, including the full notes and their redacted copy."""

    fields: dict[str, Any]
    request_id: str


class RecordPage(BaseModel):
    """One page of a tenant's records; pass ``next_cursor`` back as ``cursor``."""

    records: list[RecordSummary]
    next_cursor: str | None
    request_id: str


class RecordSearchRequest(BaseModel):
    """Exactly one identifier to look up by its blind index (exact match, normalised)."""

    # The contract says what ``_exactly_one`` enforces (null counts as not given): `{}` and
    # two identifiers at once are invalid in the schema too.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"required": [name], "properties": {name: {"type": "string"}}}
                for name in ("email", "phone", "account_id")
            ]
        },
    )

    email: str | None = Field(default=None, min_length=1, max_length=320)
    phone: str | None = Field(default=None, min_length=1, max_length=64)
    account_id: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT)

    @model_validator(mode="after")
    def _exactly_one(self) -> RecordSearchRequest:
        given = [v for v in (self.email, self.phone, self.account_id) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of: email, phone, account_id")
        return self


class RecordSearchResult(BaseModel):
    """Records matching a blind-index search, each as the caller's role may see it."""

    records: list[RecordRead]
    request_id: str


class RecordErased(RecordSummary):
    """The tombstone left by erasure."""

    request_id: str


class RecordRevealRequest(BaseModel):
    """Why the caller needs the clear record; audited (itself redacted)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=5, max_length=1000)
