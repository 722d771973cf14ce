"""Request and response bodies of the access administration endpoints."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from guard.access.principals import Role


class PrincipalCreate(BaseModel):
    """A new API key in the caller's own tenant."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    #: One of guard's roles; anything else is a 422 naming ``body.role`` in its ``errors``.
    role: Role
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)

    @field_validator("name")
    @classmethod
    def _printable(cls, name: str) -> str:
        # a 422 with an ``errors`` entry for body.name, like any other field (never the value)
        if not name.strip() or not name.isprintable():
            msg = "must be printable characters, not only spaces"
            raise ValueError(msg)
        return name


class PrincipalCreated(BaseModel):
    """The new key's id and the key itself, shown this once."""

    id: str
    role: str
    tenant: str
    key: str
    warning: str = "this key is shown only once and cannot be shown again"


class PrincipalRead(BaseModel):
    """An API key as listed: never the key or its hash."""

    id: str
    name: str
    role: str
    tenant: str
    status: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class PolicyReloaded(BaseModel):
    """The outcome of a policy reload."""

    status: str


class PolicyCheck(BaseModel):
    """A decision for a role in the caller's tenant, with the policy line behind it."""

    role: str
    tenant: str
    action: str
    resource: str
    allowed: bool
    reason: str
