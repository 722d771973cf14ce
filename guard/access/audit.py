"""The audit hook access operations write through (implemented by guard.audit)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping


class AuditRecorder(Protocol):
    """Anything that records an audit event and returns its sequence number."""

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
        entity_counts: Any = None,  # noqa: ANN401 - shape owned by guard.audit
        customer: Any = None,  # noqa: ANN401 - same
        details: Mapping[str, str | int | bool] | None = None,
    ) -> int:
        """Record one event; return its sequence number."""
        ...
