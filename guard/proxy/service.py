"""The tool proxy: one door between AI agents and the customer-data tools they call.

Threat: an agent (a language model acting for a support desk) that calls the systems of record
directly sees everything they hold, with a credential that can be stolen from its context. Here
the agent calls the tool through guard, which decides whether this principal may call this tool
(Casbin, ``tool:<name>``, deny by default), validates the arguments against the tool's JSON
Schema, counts the call against the principal's budget (calls and *distinct customers* per
window), forwards it with a credential the agent never holds, and returns only what the caller's
role may see of the response (policies/tools.yaml: field rules by JSON pointer, every other
string through detection and redaction). Every call, allowed or refused, is one audit event with
the customer's keyed hash, never their id.

Both front doors (``POST /v1/tools/{name}/call`` and the MCP endpoint) call :meth:`ToolProxy.call`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from guard.access.permissions import tool as tool_permission
from guard.errors import GuardError
from guard.proxy.budgets import BudgetExceededError, BudgetLedger
from guard.proxy.errors import (
    ArgumentRefusedError,
    ToolNotFoundError,
    ToolViewMissingError,
    UpstreamError,
)
from guard.proxy.policy import (
    HttpRoute,
    McpRoute,
    ToolPolicy,
    ToolSpec,
    render_path,
    validate_arguments,
)
from guard.proxy.upstream_http import HttpUpstreamClient
from guard.proxy.views import apply_view

if TYPE_CHECKING:
    from collections import Counter
    from collections.abc import Callable

    from guard.access.enforcer import AccessControl
    from guard.access.principals import Principal
    from guard.audit.service import AuditTrail
    from guard.detection.executor import Analyzer
    from guard.messages.service import MessageGuard
    from guard.redaction.service import Redactor

ACTION = "tool.call"


@dataclass(frozen=True)
class ToolInfo:
    """What a caller may see of a tool: its name, description and input schema."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ToolResult:
    """A tool's answer as the caller's role may see it; the repr shows no content."""

    content: Any = field(repr=False)
    entity_counts: dict[str, int]
    upstream_status: int


class ToolProxy:
    """List and call the tools of policies/tools.yaml for authenticated principals."""

    def __init__(
        self,
        policy: ToolPolicy,
        *,
        access: AccessControl,
        audit: AuditTrail,
        analyzer: Analyzer,
        redactor: Redactor,
        messages: Callable[[], MessageGuard] | None = None,
        budgets: BudgetLedger | None = None,
        http: HttpUpstreamClient | None = None,
    ) -> None:
        self.policy = policy
        self._access = access
        self._audit = audit
        self._analyzer = analyzer
        self._redactor = redactor
        self._messages = messages
        self.budgets = budgets or BudgetLedger()
        self._http = http or HttpUpstreamClient()
        self._mcp_used = False

    def close(self) -> None:
        """Close the upstream connections (HTTP, and the MCP sessions if any was opened)."""
        self._http.close()
        if self._mcp_used:
            from guard.proxy.mcp_upstream import close_default_client  # noqa: PLC0415

            close_default_client()

    # ----------------------------------------------------------------------------- list

    def list_tools(self, principal: Principal) -> list[ToolInfo]:
        """The tools ``principal`` may call (and has a view of), in the policy's order."""
        return [
            ToolInfo(spec.name, spec.description, spec.input_schema)
            for spec in self.policy.tools.values()
            if principal.role in spec.views
            and self._access.enforce(principal, tool_permission(spec.name)).allowed
        ]

    # ----------------------------------------------------------------------------- call

    def call(
        self,
        principal: Principal,
        name: str,
        arguments: dict[str, Any],
        *,
        request_id: str | None = None,
    ) -> ToolResult:
        """Authorize, validate, budget, forward, redact and audit one call of tool ``name``.

        Every outcome is one audit event (action ``tool.call``, resource ``tool:<name>``): refusals
        as ``deny`` with their reason, upstream failures as ``failure``.
        """
        spec = self.policy.tools.get(name)
        customer: str | None = None
        try:
            if spec is None:
                raise ToolNotFoundError("no tool of this name")
            self._access.require(principal, tool_permission(name))
            view = spec.views.get(principal.role)
            if view is None:
                raise ToolViewMissingError(
                    f"role {principal.role!r} has no view of tool {name!r}'s responses"
                )
            validate_arguments(spec, arguments)
            customer = _customer_of(spec, arguments)
            if spec.budget is not None:
                self.budgets.charge(
                    tenant=principal.tenant,
                    principal=principal.id,
                    tool=name,
                    customer_key=None if customer is None else self._audit.customer_hash(customer),
                    budget=spec.budget,
                )
            if spec.sends_data:
                self._scan_arguments(spec, arguments, principal.tenant)
        except GuardError as exc:
            self._record(principal, name, request_id, customer, refused=exc)
            raise
        started = time.perf_counter()
        try:
            status, document = self._forward(spec, arguments)
            content, counts = apply_view(
                document,
                view,
                redact_strings=self._redact_strings(principal.tenant, view.channel, scope=name),
                tenant=principal.tenant,
                keys=self._redactor.keys,
            )
        except GuardError as exc:
            self._record(principal, name, request_id, customer, failed=exc, started=started)
            raise
        self._record(
            principal, name, request_id, customer, status=status, counts=counts, started=started
        )
        return ToolResult(content=content, entity_counts=dict(counts), upstream_status=status)

    # ------------------------------------------------------------------------ steps

    def _forward(self, spec: ToolSpec, arguments: dict[str, Any]) -> tuple[int, Any]:
        route = spec.upstream
        if isinstance(route, HttpRoute):
            path = render_path(route.path, arguments)
            rest = {k: v for k, v in arguments.items() if k not in route.placeholders}
            reads = route.method in {"GET", "DELETE"}
            answer = self._http.call(
                tool=spec.name,
                method=route.method,
                url=urljoin(route.upstream.base_url.rstrip("/") + "/", path.lstrip("/")),
                query=rest if reads else None,
                body=None if reads else rest,
                credential=route.upstream.credential(),
                timeout_seconds=spec.timeout_seconds,
                max_bytes=spec.max_response_bytes,
            )
            return answer.status, answer.document
        if isinstance(route, McpRoute):
            from guard.proxy.mcp_upstream import call_mcp_tool  # noqa: PLC0415 - MCP client

            self._mcp_used = True
            return 200, call_mcp_tool(spec, arguments)
        raise UpstreamError(f"tool {spec.name!r}: unknown kind of upstream")  # pragma: no cover

    def _redact_strings(
        self, tenant: str, channel: str, *, scope: str
    ) -> Callable[[list[str]], list[tuple[str, list[str]]]]:
        """Detection + redaction of a batch of strings for ``channel`` (one analysis call)."""

        def redact(texts: list[str]) -> list[tuple[str, list[str]]]:
            if not texts:
                return []
            found = self._analyzer.analyze_batch(texts, tenant=tenant)
            out = []
            for text, entities in zip(texts, found, strict=True):
                result = self._redactor.redact_text(
                    text, entities, channel=channel, tenant=tenant, scope=scope
                )
                out.append((result.text, [item.entity_type for item in result.items]))
            return out

        return redact

    def _scan_arguments(self, spec: ToolSpec, arguments: dict[str, Any], tenant: str) -> None:
        """A tool that sends data out: its text arguments pass the outgoing-message check."""
        if self._messages is None:
            return
        guard = self._messages()
        for key, value in arguments.items():
            if not isinstance(value, str) or not value.strip():
                continue
            checked = guard.check(value, tenant=tenant, channel="message")
            if checked.verdict == "block":
                reasons = sorted({f.reason for f in checked.findings if f.action == "block"})
                raise ArgumentRefusedError(
                    f"tool {spec.name!r}: argument {key!r} carries "
                    + " and ".join(_REASON_WORDS.get(r, r) for r in reasons)
                )

    def _record(
        self,
        principal: Principal,
        name: str,
        request_id: str | None,
        customer: str | None,
        *,
        refused: GuardError | None = None,
        failed: GuardError | None = None,
        status: int | None = None,
        counts: Counter[str] | None = None,
        started: float | None = None,
    ) -> None:
        details: dict[str, str | int | bool] = {}
        if started is not None:
            details["latency_ms"] = round((time.perf_counter() - started) * 1000)
        if status is not None:
            details["upstream_status"] = status
        problem = refused or failed
        if problem is not None:
            details["reason"] = problem.type_slug
            if isinstance(problem, BudgetExceededError):
                details["retry_after"] = problem.retry_after
        known = self.policy.tools.get(name) is not None
        self._audit.record(
            action=ACTION,
            resource=f"tool:{name}" if known else "tool:unknown",
            decision="deny" if refused is not None else "allow",
            outcome="success" if problem is None else "failure",
            principal=principal.id,
            role=principal.role,
            tenant=principal.tenant,
            request_id=request_id,
            entity_counts=dict(counts or {}),
            customer=customer,
            details=details,
        )


_REASON_WORDS = {"other_customer": "another customer's data", "secret": "a secret"}


def _customer_of(spec: ToolSpec, arguments: dict[str, Any]) -> str | None:
    """The customer the call is about (the policy names the argument), as text."""
    if spec.customer_argument is None:
        return None
    value = arguments.get(spec.customer_argument)
    return None if value is None else str(value)
