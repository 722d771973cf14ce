"""Permissions: the (action, object) pairs every route and command declares it needs."""

from __future__ import annotations

import re
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
        # the tool proxy at all (list, call); each tool is its own object, tool:<name>, below
        "tools": frozenset({"list", "call"}),
        # incidents: read them, work them (transition, note, tick, mark notified), render the
        # per-customer notices (decrypts contact data), resolve affected customers to records
        "incidents": frozenset({"read", "update", "notify", "resolve"}),
        # analytics export: run one (stream rows through a profile), read the manifests
        "export": frozenset({"run", "read"}),
        # data subject requests: open one (with the identity check stated), read them, make
        # the access package (decrypts the customer's data), carry out an erasure request
        "subjects": frozenset({"open", "read", "package", "erase"}),
        # retention: read the schedule, runs and holds; place and release legal holds
        "retention": frozenset({"read", "hold"}),
        # the record of processing and the privacy notice generated from the policies
        "compliance": frozenset({"read"}),
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

#: See incidents, their evidence, clocks and the authority's notice (no customer data).
INCIDENTS_READ: Final = Permission("read", "incidents")
#: Work an incident: transition, note, tick a runbook step, mark a party notified.
INCIDENTS_UPDATE: Final = Permission("update", "incidents")
#: Render the notice to each affected customer (their name is decrypted for that alone).
INCIDENTS_NOTIFY: Final = Permission("notify", "incidents")
#: Resolve an incident's affected customers (keyed hashes) to record ids.
INCIDENTS_RESOLVE: Final = Permission("resolve", "incidents")

#: Stream rows through an export profile (``POST /v1/exports/redact``).
EXPORT_RUN: Final = Permission("run", "export")
#: Read export manifests: what left, when, by whom, under which profile.
EXPORT_READ: Final = Permission("read", "export")

#: Open a data subject request for a customer found through the blind indexes.
SUBJECTS_OPEN: Final = Permission("open", "subjects")
#: Read data subject requests, their deadlines and outcomes (no customer data).
SUBJECTS_READ: Final = Permission("read", "subjects")
#: Make (and download) the encrypted access package of a request: decrypts the customer's data.
SUBJECTS_PACKAGE: Final = Permission("package", "subjects")
#: Carry out an erasure request (crypto-shreds the record).
SUBJECTS_ERASE: Final = Permission("erase", "subjects")
#: Read the retention schedule, past runs and legal holds.
RETENTION_READ: Final = Permission("read", "retention")
#: Place and release legal holds.
RETENTION_HOLD: Final = Permission("hold", "retention")
#: Read the record of processing and the privacy notice.
COMPLIANCE_READ: Final = Permission("read", "compliance")

#: See the tools the caller may call (``GET /v1/tools``, MCP ``tools/list``).
TOOLS_LIST: Final = Permission("list", "tools")
#: Use the tool proxy; each call also needs ``call`` on the tool's own object (:func:`tool`).
TOOLS_CALL: Final = Permission("call", "tools")
#: A tool's object: ``tool:<name>`` (names as in policies/tools.yaml).
TOOL_OBJECT_PREFIX: Final = "tool:"
_TOOL_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")

#: Every permission, in a stable order.
ALL_PERMISSIONS: Final = tuple(
    sorted(Permission(action, obj) for obj, actions in OBJECT_ACTIONS.items() for action in actions)
)


def tool(name: str) -> Permission:
    """The permission to call the tool ``name`` (object ``tool:<name>``, action ``call``)."""
    return Permission("call", TOOL_OBJECT_PREFIX + name)


def is_known(action: str, obj: str) -> bool:
    """Whether ``action`` on ``obj`` is a permission guard defines (``tool:<name>``: ``call``)."""
    if obj.startswith(TOOL_OBJECT_PREFIX):
        return action == "call" and _TOOL_NAME.fullmatch(obj[len(TOOL_OBJECT_PREFIX) :]) is not None
    return action in OBJECT_ACTIONS.get(obj, frozenset())
