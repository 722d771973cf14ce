"""The FastAPI application: routers, error handling, request ids, limits, metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from guard import __version__
from guard.api.health import router as health_router
from guard.api.middleware import BodyLimitMiddleware, MetricsMiddleware, RequestIdMiddleware
from guard.api.problems import install_problem_handlers
from guard.api.services import Services, build_services
from guard.config import get_settings
from guard.detection.endpoints import router as detection_router
from guard.redaction.endpoints import router as redaction_router

if TYPE_CHECKING:
    from guard.config import Settings
    from guard.detection.engine import Detector

DESCRIPTION = """guard sits between customer-service agents and customer data: it redacts PII
in outgoing text, enforces role-based access with Casbin, and writes a tamper-evident audit
trail. Authenticate with `Authorization: Bearer <API key or JWT>`. Errors are
`application/problem+json`."""


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    detector: Detector | None = None,
) -> FastAPI:
    """Build the app; ``services`` or ``detector`` may be given (tests share one model)."""
    if services is None:
        services = build_services(settings or get_settings(), detector=detector)
    app = FastAPI(title="guard", version=__version__, description=DESCRIPTION)
    app.state.services = services
    install_problem_handlers(app)
    app.include_router(health_router)
    app.include_router(redaction_router)
    app.include_router(detection_router)
    _include_optional_routers(app)
    # outermost first: ids for everything, then size limits, then metrics of what got through
    app.add_middleware(MetricsMiddleware, metrics=services.metrics)
    app.add_middleware(BodyLimitMiddleware, limit=services.settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    return app


def _include_optional_routers(app: FastAPI) -> None:
    """Routers of capabilities that ship their own endpoints (audit review, administration)."""
    from guard.access.endpoints import router as access_router  # noqa: PLC0415
    from guard.audit.endpoints import router as audit_router  # noqa: PLC0415
    from guard.records.endpoints import router as records_router  # noqa: PLC0415

    app.include_router(audit_router)
    app.include_router(access_router)
    app.include_router(records_router)
