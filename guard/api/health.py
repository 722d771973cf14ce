"""Health, readiness and metrics: the only routes without a permission (for probes)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from guard.api.problems import problem
from guard.api.security import services_of
from guard.detection.executor import AnalysisStatus
from guard.errors import GuardError

router = APIRouter(tags=["operations"])

#: Paths a test allows without a permission; everything else must declare one.
PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/metrics",
        "/docs",
        "/docs/oauth2-redirect",
        "/openapi.json",
        "/redoc",
        # the console's sign-in and sign-out: the session they open or close is the credential
        "/console/login",
        "/console/logout",
    }
)


# async: answered on the event loop, needing no threadpool thread, so it answers even while
# every thread is busy or waiting for an analysis worker
@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
def readyz(request: Request) -> JSONResponse | dict[str, object]:
    """The database answers, analysis workers have the model loaded, the record keys work."""
    services = services_of(request)
    checks: dict[str, str] = {}
    try:
        with services.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"unavailable ({type(exc).__name__})"
    # the model lives in the analysis workers: ready with at least one worker up (others may
    # be restarting after a stopped analysis, which must not take the instance out of rotation)
    analysis = services.analysis.status()
    if analysis.ready == 0:
        checks["model"] = f"unavailable (0 of {analysis.workers} analysis workers ready)"
    else:
        checks["model"] = "ok" if analysis.model_loaded else "not loaded"
    try:
        from guard.records.endpoints import records_of  # noqa: PLC0415 - records import keys

        records_of(request).current_key_version()
        checks["keys"] = "ok"
    except GuardError as exc:  # a missing keyring, a locked HSM: records cannot be served
        checks["keys"] = f"unavailable ({type(exc).__name__})"
    if any(value != "ok" for value in checks.values()):
        failing = ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok")
        return problem(
            request,
            503,
            "unavailable",
            f"not ready: {failing}",
            extra={"checks": checks, "analysis": _pool(analysis)},
        )
    return {"status": "ready", "checks": checks, "analysis": _pool(analysis)}


def _pool(status: AnalysisStatus) -> dict[str, object]:
    """What readiness shows of the analysis pool: sizes and load, no counters."""
    return {
        "mode": status.mode,
        "workers": status.workers,
        "ready": status.ready,
        "starting": status.starting,
        "busy": status.busy,
        "queued": status.queued,
    }


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus text exposition."""
    services = services_of(request)
    return Response(services.metrics.render(), media_type=services.metrics.content_type)
