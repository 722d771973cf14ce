"""The FastAPI application: routers, error handling, request ids, limits, metrics."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio.to_thread
from fastapi import APIRouter, FastAPI

from guard import __version__
from guard.api.audit_middleware import AuditMiddleware
from guard.api.disconnect import DisconnectMiddleware
from guard.api.health import router as health_router
from guard.api.middleware import (
    BodyLimitMiddleware,
    ErrorMiddleware,
    MetricsMiddleware,
    NoStoreMiddleware,
    RequestIdMiddleware,
)
from guard.api.openapi import install_docs, install_openapi
from guard.api.problems import install_problem_handlers
from guard.api.services import Services, build_services
from guard.config import get_settings
from guard.detection.endpoints import router as detection_router
from guard.redaction.endpoints import router as redaction_router

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from contextlib import AbstractAsyncContextManager

    from guard.config import Settings
    from guard.detection.engine import Detector
    from guard.proxy.mcp_front import McpFrontDoor

DESCRIPTION = """guard sits between customer-service agents and customer data: it redacts PII
in outgoing text, enforces role-based access with Casbin, and writes a tamper-evident audit
trail. Authenticate with `Authorization: Bearer <API key or JWT>` or `X-API-Key: <API key>`
(the Authorize button). Errors are `application/problem+json` and never echo input; `/v1`
responses are never cached (`Cache-Control: no-store`)."""


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    detector: Detector | None = None,
) -> FastAPI:
    """Build the app; ``services`` or ``detector`` may be given (tests share one model)."""
    built = services is None
    settings = services.settings if services is not None else settings or get_settings()
    # policies that stop start-up when wrong, before any worker starts (the services load the
    # redaction policy first thing too)
    message_policies = _message_policies(settings)
    tool_policy = _tool_policy(settings)
    if services is None:
        services = build_services(settings, detector=detector)
    mcp = _mcp_front_door(services.settings)
    # docs from guard's own files (install_docs), no ReDoc: nothing is loaded from a CDN
    app = FastAPI(
        title="guard",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        # what the app built (the analysis workers above all) it stops; given services not.
        # The MCP door's session manager runs for the app's lifetime either way.
        lifespan=_closing(services if built else None, mcp),
        # FastAPI's own OpenTelemetry hooks stay off: guard logs through its own processors
        # (payloads dropped, exception types only) and counts in Prometheus. With a global
        # OpenTelemetry logger configured, FastAPI's "logs" would record exception messages
        # and stack traces, which may quote a request's data.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.services = services
    app.state.message_policies = message_policies
    app.state.tool_policy = tool_policy
    install_problem_handlers(app)
    app.include_router(health_router)
    # routes are matched in the order they were added, and agents' tool calls are the hottest
    # path (matching through every router before it cost ~0.1 ms a call)
    app.include_router(_tools_router())
    app.include_router(redaction_router)
    app.include_router(detection_router)
    _include_optional_routers(app)
    _install_console(app)
    # /mcp: a mount that authenticates and authorizes each request itself (guard/proxy/mcp_front)
    app.router.routes.append(mcp.route)
    install_openapi(app)
    install_docs(app)
    # add_middleware wraps: the last added is the outermost. Outermost first: ids for
    # everything, no-store on every /v1 answer, unexpected errors as a 500 problem (never
    # re-raised), then size limits, then metrics of what got through.
    # innermost: after the body is read, a client that leaves cancels its analysis
    app.add_middleware(DisconnectMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=services.metrics)
    app.add_middleware(
        BodyLimitMiddleware,
        limit=services.settings.max_body_bytes,
        # the streaming export reads its body chunk by chunk (memory flat): its own cap
        paths={"/v1/exports/redact": services.settings.export_max_body_bytes},
    )
    app.add_middleware(ErrorMiddleware)
    # one audit event per request, seeing its final status (also the 500 of ErrorMiddleware)
    app.add_middleware(AuditMiddleware, services=services)
    app.add_middleware(NoStoreMiddleware, prefix="/v1")
    app.add_middleware(RequestIdMiddleware)
    return app


def create_served_app() -> FastAPI:
    """The app as ``guard serve`` runs it: each worker process configures its logging first.

    uvicorn starts workers as new processes, which do not inherit the CLI's logging setup; the
    processors that drop payloads and keep exception types only must run in every one of them.
    """
    from guard.logging import configure_logging  # noqa: PLC0415 - only for served apps

    settings = get_settings()
    configure_logging(settings)
    return create_app(settings)


def _closing(
    services: Services | None, mcp: McpFrontDoor
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A lifespan that closes, at shutdown, what the app opened and what it built.

    Opened on first use: the tool proxy's upstream connections. Built: ``services`` (the
    analysis workers), when the app made them rather than being given them. The MCP door's
    session manager runs for the app's lifetime (its handlers run in its task group).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            async with mcp.running():  # the MCP door's session manager (its task group)
                yield
        finally:
            tools = getattr(app.state, "tools", None)
            if tools is not None:
                await anyio.to_thread.run_sync(tools.close)
            if services is not None:
                await anyio.to_thread.run_sync(services.close)

    return lifespan


def _mcp_front_door(settings: Settings) -> McpFrontDoor:
    from guard.proxy.mcp_front import McpFrontDoor  # noqa: PLC0415 - with the tools router

    return McpFrontDoor(settings)


def _message_policies(settings: Settings) -> object:
    from guard.messages.endpoints import load_message_policies  # noqa: PLC0415 - with its router

    return load_message_policies(settings)


def _tool_policy(settings: Settings) -> object:
    from guard.access.principals import ROLES  # noqa: PLC0415
    from guard.proxy.policy import TOOLS_FILENAME, load_tool_policy  # noqa: PLC0415

    return load_tool_policy(settings.policies_dir / TOOLS_FILENAME, roles=ROLES)


def _install_console(app: FastAPI) -> None:
    from guard.console.pages import install_console  # noqa: PLC0415 - with its templates

    install_console(app)


def _tools_router() -> APIRouter:
    from guard.proxy.endpoints import router  # noqa: PLC0415 - with the other routers

    return router


def _include_optional_routers(app: FastAPI) -> None:
    """Routers of capabilities that ship their own endpoints (audit review, administration)."""
    from guard.access.endpoints import router as access_router  # noqa: PLC0415
    from guard.audit.endpoints import router as audit_router  # noqa: PLC0415
    from guard.export.endpoints import router as export_router  # noqa: PLC0415
    from guard.incidents.endpoints import router as incidents_router  # noqa: PLC0415
    from guard.messages.endpoints import router as messages_router  # noqa: PLC0415
    from guard.records.endpoints import router as records_router  # noqa: PLC0415
    from guard.subjects.compliance_endpoints import router as compliance_router  # noqa: PLC0415
    from guard.subjects.endpoints import router as subjects_router  # noqa: PLC0415
    from guard.subjects.retention_endpoints import router as retention_router  # noqa: PLC0415

    app.include_router(audit_router)
    app.include_router(access_router)
    app.include_router(records_router)
    app.include_router(messages_router)
    app.include_router(incidents_router)
    app.include_router(export_router)
    app.include_router(subjects_router)
    app.include_router(retention_router)
    app.include_router(compliance_router)
