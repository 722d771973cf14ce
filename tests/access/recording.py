"""A real, in-memory AuditRecorder for tests: it keeps every event it is given."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping


class RecordingAudit:
    """A real (in-memory) AuditRecorder: keeps what it is given."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def record(
        self,
        *,
        action: str,
        resource: str,
        decision: str,
        outcome: str,
        principal: str | None = None,
        role: str | None = None,
        tenant: str | None = None,
        request_id: str | None = None,
        entity_counts: Any = None,
        customer: Any = None,
        details: Mapping[str, str | int | bool] | None = None,
    ) -> int:
        self.events.append(
            {
                "action": action,
                "resource": resource,
                "decision": decision,
                "outcome": outcome,
                "principal": principal,
                "role": role,
                "tenant": tenant,
                "request_id": request_id,
                "entity_counts": entity_counts,
                "customer": customer,
                "details": dict(details or {}),
            }
        )
        return len(self.events)
