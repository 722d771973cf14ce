"""The tool proxy's MCP front door: ``/mcp`` (official MCP SDK, streamable HTTP, stateless).

The same :class:`~guard.proxy.service.ToolProxy` as ``/v1/tools`` serves it (``tools_of``): MCP
``tools/list`` is ``ToolProxy.list_tools``, ``tools/call`` is ``ToolProxy.call``; one
implementation, two front doors.

Threat: a second door that is weaker than the first. Every request is authenticated with the
API's bearer credentials (API key or JWT) and authorized before the SDK sees a byte of it: a
request without good credentials gets the API's 401 problem, a role without the door's
permission (``tools:call`` for a JSON-RPC ``tools/call``, ``tools:list`` for anything else) its
403, both audited and throttled by :func:`guard.api.security.requires`. Each call is then
authorized per tool inside ``ToolProxy.call``, and a guard refusal there (unknown tool, no
permission, invalid arguments, budget, upstream failure) comes back as an MCP tool error
(``isError``) carrying the problem's message only, never a value. The route is a mount, so the
audit middleware writes an event for any request that wrote none itself (``initialize``, a
ping). The SDK's host and origin checks (DNS rebinding) allow loopback and ``GUARD_HOST``.
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

import anyio.to_thread
import mcp_types
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from starlette._utils import get_route_path
from starlette.requests import Request
from starlette.routing import Match, Mount

from guard import __version__
from guard.access.permissions import TOOLS_CALL, TOOLS_LIST
from guard.api.security import Caller, record_allowed, request_audit_of, requires
from guard.audit.context import request_audit_scope
from guard.errors import GuardError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from mcp.server.context import ServerRequestContext
    from starlette.types import Message, Receive, Scope, Send

    from guard.access.permissions import Permission
    from guard.config import Settings
    from guard.proxy.service import ToolProxy

MCP_PATH: Final = "/mcp"
#: Where the gate leaves the authorized caller for the MCP handlers (``scope["state"]``).
CALLER_STATE_KEY: Final = "mcp_caller"
_LOOPBACK: Final = ("127.0.0.1", "localhost", "[::1]")
_ANY_ADDRESS: Final = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - names, not a bind


class McpFrontDoor:
    """The ``/mcp`` route and the SDK session manager that must run in the app's lifespan."""

    def __init__(self, settings: Settings) -> None:
        from guard.proxy.mcp_upstream import PINS_FILENAME, configure_pins_path  # noqa: PLC0415

        # the upstream client checks pins in this app's var_dir (the CLI writes them there)
        configure_pins_path(settings.var_dir / PINS_FILENAME)
        self.server: Server[Any] = Server(
            "guard",
            version=__version__,
            instructions="Customer-data tools; answers are redacted for your role.",
            on_list_tools=_list_tools,
            on_call_tool=_call_tool,
        )
        self._security = transport_security(settings)
        self._max_body = settings.max_body_bytes
        self.session_manager = self._new_manager()
        self.route = _McpMount(MCP_PATH, app=_Gate(self))

    def _new_manager(self) -> StreamableHTTPSessionManager:
        return StreamableHTTPSessionManager(
            app=self.server,
            stateless=True,  # no session state: any instance behind a load balancer answers
            json_response=True,
            security_settings=self._security,
            max_request_body_size=self._max_body,
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the SDK's session manager (its task group) for the app's lifetime.

        A manager runs once; an app whose lifespan starts again (tests) gets a fresh one.
        """
        manager = self.session_manager
        if manager._has_started:  # noqa: SLF001 - the SDK offers no public "has run" flag
            manager = self.session_manager = self._new_manager()
        async with manager.run():
            yield


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """DNS-rebinding protection: ``Host`` must be loopback or ``GUARD_HOST`` (any port)."""
    hosts = list(_LOOPBACK)
    configured = settings.host.strip()
    if configured not in _ANY_ADDRESS and configured not in hosts:
        hosts.append(f"[{configured}]" if ":" in configured else configured)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[h + suffix for h in hosts for suffix in ("", ":*")],
        allowed_origins=[
            f"{scheme}://{h}{suffix}"
            for h in hosts
            for scheme in ("http", "https")
            for suffix in ("", ":*")
        ],
    )


class _McpMount(Mount):
    """A mount that answers exactly ``/mcp`` (and ``/mcp/``), without a redirect.

    A mount rather than a plain route on purpose: the audit middleware writes an event for every
    request to a mount (a plain Starlette route counts as public, like /docs), and the route walk
    of the permission test covers API routes only; this one authorizes itself in :class:`_Gate`.
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and get_route_path(scope) in (self.path, self.path + "/"):
            return Match.FULL, {"endpoint": self.app, "path_params": {}}
        return Match.NONE, {}


class _Gate:
    """Authenticate and authorize before any MCP processing; then hand over to the SDK."""

    def __init__(self, door: McpFrontDoor) -> None:
        self._door = door

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Admit the caller (401/403 problems raised to the app's handlers) or serve MCP."""
        body = await _read_body(receive) if scope.get("method") == "POST" else b""
        request = Request(scope)
        caller = await anyio.to_thread.run_sync(requires(_permission_for(body)), request)
        scope.setdefault("state", {})[CALLER_STATE_KEY] = caller
        await self._door.session_manager.handle_request(scope, _replay(body, receive), send)


async def _read_body(receive: Receive) -> bytes:
    """The whole request body (the body-limit middleware outside has already capped it)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(bytes(message.get("body", b"")))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the SDK the body read by the gate, then the connection's events."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _permission_for(body: bytes) -> Permission:
    """``tools:call`` for a JSON-RPC ``tools/call`` (batches included), else ``tools:list``."""
    try:
        document = json.loads(body) if body else None
    except (ValueError, RecursionError):  # RecursionError: nested past the parser
        return TOOLS_LIST  # the SDK answers the parse error
    messages = document if isinstance(document, list) else [document]
    calls = any(isinstance(m, dict) and m.get("method") == "tools/call" for m in messages)
    return TOOLS_CALL if calls else TOOLS_LIST


# --------------------------------------------------------------------------- handlers


def _caller_of(ctx: ServerRequestContext[Any, Any]) -> tuple[Request, Caller]:
    request = ctx.request
    if not isinstance(request, Request):  # pragma: no cover - the gate always runs first
        raise MCPError(mcp_types.INTERNAL_ERROR, "no HTTP request")
    caller = (request.scope.get("state") or {}).get(CALLER_STATE_KEY)
    if not isinstance(caller, Caller):  # pragma: no cover - the gate always runs first
        raise MCPError(mcp_types.INTERNAL_ERROR, "not authenticated")
    return request, caller


def _proxy_of(request: Request) -> ToolProxy:
    from guard.proxy.endpoints import tools_of  # noqa: PLC0415 - the HTTP door's ToolProxy

    return tools_of(request)


async def _list_tools(
    ctx: ServerRequestContext[Any, Any], _params: mcp_types.PaginatedRequestParams | None
) -> mcp_types.ListToolsResult:
    """``tools/list``: the caller's permitted tools, audited like ``GET /v1/tools``."""
    request, caller = _caller_of(ctx)

    def listed() -> list[mcp_types.Tool]:
        with _audit_scope_of(request):
            tools = _proxy_of(request).list_tools(caller.principal)
            record_allowed(
                request,
                caller,
                action="tools.list",
                resource="tools",
                details={"tools": len(tools), "door": "mcp"},
            )
        return [
            mcp_types.Tool(name=t.name, description=t.description, input_schema=t.input_schema)
            for t in tools
        ]

    return mcp_types.ListToolsResult(tools=await anyio.to_thread.run_sync(listed))


async def _call_tool(
    ctx: ServerRequestContext[Any, Any], params: mcp_types.CallToolRequestParams
) -> mcp_types.CallToolResult:
    """``tools/call``: ``ToolProxy.call`` in a worker thread; guard refusals are tool errors."""
    request, caller = _caller_of(ctx)
    arguments = dict(params.arguments or {})

    def called() -> Any:  # noqa: ANN401 - the redacted JSON document
        with _audit_scope_of(request):
            result = _proxy_of(request).call(
                caller.principal, params.name, arguments, request_id=caller.request_id
            )
        return result.content

    try:
        content = await anyio.to_thread.run_sync(called)
    except GuardError as exc:
        # the problem's message only: it names the tool and the argument, never a value
        return mcp_types.CallToolResult(
            content=[mcp_types.TextContent(type="text", text=exc.message)],
            is_error=True,
        )
    text = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    return mcp_types.CallToolResult(
        content=[mcp_types.TextContent(type="text", text=text)],
        structured_content=content if isinstance(content, dict) else {"result": content},
    )


def _audit_scope_of(request: Request) -> Any:  # noqa: ANN401 - a context manager
    """The request's audit state as the current one in this worker thread.

    The SDK runs handlers in its own tasks; passing the state explicitly makes the events the
    proxy writes count for this HTTP request (and carry its audit request id).
    """
    state = request_audit_of(request.scope)
    if state is None:  # pragma: no cover - the audit middleware always runs outside
        from contextlib import nullcontext  # noqa: PLC0415

        return nullcontext()
    return request_audit_scope(state)


__all__ = ["CALLER_STATE_KEY", "MCP_PATH", "McpFrontDoor", "transport_security"]
