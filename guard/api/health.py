"""Health, readiness and metrics: the only routes without a permission (for probes)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from guard.api.problems import problem
from guard.api.security import services_of
from guard.errors import GuardError

router = APIRouter(tags=["operations"])

#: Paths a test allows without a permission; everything else must declare one.
PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"}
)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
def readyz(request: Request) -> JSONResponse | dict[str, object]:
    """The database answers, the NLP model is loaded and the record keys are available."""
    services = services_of(request)
    checks: dict[str, str] = {}
    try:
        with services.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"unavailable ({type(exc).__name__})"
    pipeline = services.detector.nlp_engine.pipeline
    checks["model"] = "ok" if "ner" in pipeline.pipe_names else "not loaded"
    try:
        from guard.records.endpoints import records_of  # noqa: PLC0415 - records import keys

        records_of(request).current_key_version()
        checks["keys"] = "ok"
    except GuardError as exc:  # a missing keyring, a locked HSM: records cannot be served
        checks["keys"] = f"unavailable ({type(exc).__name__})"
    if any(value != "ok" for value in checks.values()):
        failing = ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok")
        return problem(
            request, 503, "unavailable", f"not ready: {failing}", extra={"checks": checks}
        )
    return {"status": "ready", "checks": checks}


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus text exposition."""
    services = services_of(request)
    return Response(services.metrics.render(), media_type=services.metrics.content_type)
