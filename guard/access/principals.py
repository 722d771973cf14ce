"""Principals: the authenticated caller, its role and its tenant."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal, get_args

from guard.errors import InvalidInputError

#: Every role guard knows; a policy line or credential naming another role is rejected.
Role = Literal["agent", "supervisor", "compliance_officer", "analyst", "admin"]
ROLES: Final[tuple[str, ...]] = get_args(Role)

#: Tenant names: short, lower-case, no wildcards (``*`` means "any tenant" in the policy).
_TENANT_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
_MAX_NAME_LENGTH: Final = 200

PrincipalKind = Literal["api_key", "jwt"]


def validate_role(role: str) -> str:
    """The role itself if guard knows it; InvalidInputError naming the known roles otherwise."""
    if role not in ROLES:
        raise InvalidInputError(f"role: unknown role; expected one of {', '.join(ROLES)}")
    return role


def validate_tenant(tenant: str) -> str:
    """The tenant itself if well-formed (lower-case letters, digits, ``_.-``, at most 63)."""
    if not isinstance(tenant, str) or _TENANT_PATTERN.fullmatch(tenant) is None:
        raise InvalidInputError(
            "tenant: must be 1-63 lower-case letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return tenant


def validate_name(name: str) -> str:
    """The principal's display name if non-empty, printable and at most 200 characters."""
    if not name.strip() or len(name) > _MAX_NAME_LENGTH or not name.isprintable():
        raise InvalidInputError(
            f"name: must be 1-{_MAX_NAME_LENGTH} printable characters, not only spaces"
        )
    return name


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key or a JWT subject, acting with one role in one tenant."""

    id: str
    name: str
    role: str
    tenant: str
    kind: PrincipalKind

    def __post_init__(self) -> None:
        validate_role(self.role)
        validate_tenant(self.tenant)
        if self.kind not in ("api_key", "jwt"):
            raise InvalidInputError("kind: must be 'api_key' or 'jwt'")
