"""The tool proxy's HTTP front door: ``GET /v1/tools`` and ``POST /v1/tools/{name}/call``.

Both call the one :class:`~guard.proxy.service.ToolProxy` the MCP front door calls too; the
service authorizes each tool, audits every call and redacts every answer.
"""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, Request

from guard.access.permissions import TOOLS_CALL, TOOLS_LIST
from guard.api.routing import GuardRoute
from guard.api.security import Caller, record_allowed, requires, services_of
from guard.proxy.schemas import ToolCallRequest, ToolCallResponse, ToolList, ToolOut
from guard.proxy.service import ToolProxy

router = APIRouter(prefix="/v1/tools", tags=["tools"], route_class=GuardRoute)


def build_tool_proxy(request: Request) -> ToolProxy:
    """A ToolProxy over the app's services and policies/tools.yaml."""
    from guard.access.principals import ROLES  # noqa: PLC0415
    from guard.messages.endpoints import messages_of  # noqa: PLC0415 - argument scanning
    from guard.proxy.policy import TOOLS_FILENAME, ToolPolicy, load_tool_policy  # noqa: PLC0415

    services = services_of(request)
    # loaded (and validated) when the app was created; built here for apps made without it
    policy: ToolPolicy | None = getattr(request.app.state, "tool_policy", None)
    if policy is None:
        policy = load_tool_policy(services.settings.policies_dir / TOOLS_FILENAME, roles=ROLES)
    return ToolProxy(
        policy,
        access=services.access,
        audit=services.audit,
        analyzer=services.analysis,
        redactor=services.redactor,
        messages=lambda: messages_of(request),
    )


def tools_of(request: Request) -> ToolProxy:
    """The app's ToolProxy (``app.state.tools``), built on first use."""
    state = request.app.state
    proxy: ToolProxy | None = getattr(state, "tools", None)
    if proxy is None:
        proxy = build_tool_proxy(request)
        state.tools = proxy
    return proxy


@router.get("", response_model=ToolList)
def list_tools(
    request: Request, caller: Annotated[Caller, Depends(requires(TOOLS_LIST))]
) -> ToolList:
    """The tools the caller may call, with their input schemas (JSON Schema)."""
    tools = tools_of(request).list_tools(caller.principal)
    record_allowed(
        request,
        caller,
        action="tools.list",
        resource="tools",
        details={"tools": len(tools)},
    )
    return ToolList(
        tools=[
            ToolOut(name=t.name, description=t.description, input_schema=t.input_schema)
            for t in tools
        ]
    )


@router.post(
    "/{name}/call",
    response_model=ToolCallResponse,
    responses={404: {"description": "-"}, 502: {"description": "-"}, 504: {"description": "-"}},
)
async def call_tool(
    name: str,
    body: ToolCallRequest,
    request: Request,
    caller: Annotated[Caller, Depends(requires(TOOLS_CALL))],
) -> ToolCallResponse:
    """Call a tool: authorized per tool, arguments validated, budgets counted, answer redacted.

    Upstream failures are 502/504 problems naming the tool, never the upstream's body.
    """

    def call() -> ToolCallResponse:
        result = tools_of(request).call(
            caller.principal, name, body.arguments, request_id=caller.request_id
        )
        return ToolCallResponse(tool=name, content=result.content, request_id=caller.request_id)

    # async, with the blocking call in one worker thread: a sync endpoint would take a second
    # thread hop after it to validate the response model
    return await anyio.to_thread.run_sync(call)
