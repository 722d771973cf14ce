"""Permissions: the (action, object) pairs every route and command declares it needs."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True, order=True)
class Permission:
    """One thing a role may be allowed to do: ``action`` on ``object``."""

    action: str
    object: str

    def __str__(self) -> str:
        return f"{self.object}:{self.action}"


#: Every object guard protects and the actions on it; the policy may name no others.
OBJECT_ACTIONS: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        "text": frozenset({"redact", "detect"}),
        "token": frozenset({"reveal"}),
        "audit": frozenset({"read", "export", "verify"}),
        "policy": frozenset({"reload", "check"}),
        "principal": frozenset({"manage"}),
        "records": frozenset({"create", "read", "update", "search", "list", "erase", "reveal"}),
        "messages": frozenset({"check"}),
    }
)

REDACT: Final = Permission("redact", "text")
DETECT: Final = Permission("detect", "text")
REVEAL: Final = Permission("reveal", "token")
AUDIT_READ: Final = Permission("read", "audit")
AUDIT_EXPORT: Final = Permission("export", "audit")
AUDIT_VERIFY: Final = Permission("verify", "audit")
POLICY_RELOAD: Final = Permission("reload", "policy")
POLICY_CHECK: Final = Permission("check", "policy")
PRINCIPAL_MANAGE: Final = Permission("manage", "principal")
RECORDS_CREATE: Final = Permission("create", "records")
RECORDS_READ: Final = Permission("read", "records")
RECORDS_UPDATE: Final = Permission("update", "records")
RECORDS_SEARCH: Final = Permission("search", "records")
RECORDS_LIST: Final = Permission("list", "records")
RECORDS_ERASE: Final = Permission("erase", "records")
#: The full clear record, past the role's view; every use is audited with its reason.
RECORDS_REVEAL: Final = Permission("reveal", "records")
#: Check an outgoing message or note before it is sent (other customers' data, secrets, tone).
MESSAGES_CHECK: Final = Permission("check", "messages")

#: Every permission, in a stable order.
ALL_PERMISSIONS: Final = tuple(
    sorted(Permission(action, obj) for obj, actions in OBJECT_ACTIONS.items() for action in actions)
)


def is_known(action: str, obj: str) -> bool:
    """Whether ``action`` on ``obj`` is a permission guard defines."""
    return action in OBJECT_ACTIONS.get(obj, frozenset())
