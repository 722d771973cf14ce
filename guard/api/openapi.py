"""The OpenAPI document as guard really behaves, and the API docs served without a CDN.

FastAPI documents what a route declares. guard answers more than that on every route: the
security dependency refuses with 401, 403 or 429; the body limit answers 413; validation,
decoding and any 4xx is ``application/problem+json``; analysis may answer 503 (busy). The
contract is completed here, once, from the routes themselves, so a fuzzer (schemathesis)
checking every response against it finds the truth.
"""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING, Any

from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import HTMLResponse, Response

from guard.api.problems import PROBLEM_CONTENT_TYPE
from guard.api.security import permission_of

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.requests import Request


class FieldProblem(BaseModel):
    """One wrong field: where (client-chosen keys shown as ``<key>``) and why."""

    field: str
    problem: str


class Problem(BaseModel):
    """An RFC 9457 problem: a stable ``type``, a precise ``detail``, never the input."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A stable URN, e.g. urn:guard:problem:invalid-input.")
    title: str
    status: int
    detail: str
    instance: str | None = Field(
        default=None, description="The route template, e.g. /v1/records/{record_id}."
    )
    request_id: str | None = Field(description="Names this request in guard's logs and audit.")
    errors: list[FieldProblem] | None = Field(default=None, description="Every wrong field (422).")


_DESCRIPTIONS = {
    401: "No credentials, or credentials that are not valid.",
    403: "The caller's role may not do this in its tenant.",
    404: "No such object in the caller's tenant.",
    409: "The change conflicts with the object's state (an incident moves forward only).",
    410: "The record was erased (crypto-shredded); its tombstone remains.",
    413: "The body (GUARD_MAX_BODY_BYTES) or a text (GUARD_MAX_TEXT_BYTES) is too large.",
    415: "The body's media type is not one this route reads.",
    422: "Invalid input: the problem names each wrong field, never its value.",
    429: "Too many failed authentications from this client, or a tool's budget is spent; "
    "see Retry-After.",
    500: "guard could not process the request; the request id identifies it in the logs.",
    502: "The tool's upstream failed; nothing of its answer is returned.",
    503: "guard is busy or not ready; see Retry-After when given.",
    504: "The tool's upstream did not answer in time.",
}

SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (gk_...) or a JWT, as 'Authorization: Bearer <credential>'.",
    },
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


def _statuses(path: str, operation: dict[str, Any], *, protected: bool) -> set[int]:
    """The error statuses guard may answer for one operation."""
    statuses: set[int] = set()
    if protected:
        statuses |= {401, 403, 429}
    if path.startswith("/v1/"):
        statuses |= {422, 500, 503}
    if "requestBody" in operation:
        statuses |= {413, 422}
    if "{" in path:
        statuses.add(404)
        if path.startswith("/v1/records/"):
            statuses.add(410)
    if path == "/readyz":
        statuses.add(503)
    # errors a route declares itself (``responses={404: ...}``): documented as problems too
    statuses |= {
        int(code)
        for code in operation.get("responses", {})
        if code.isdigit() and int(code) >= 400  # noqa: PLR2004 - the first error status
    }
    return statuses


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, completed with guard's errors, security schemes and media types."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem_schema.pop("$defs", {}))
    schemas["Problem"] = problem_schema
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    components["securitySchemes"] = SECURITY_SCHEMES
    protected = {
        (context.path, method.lower())
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
        and permission_of(context.original_route) is not None
        for method in context.methods or ()
    }
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            is_protected = (path, method) in protected
            if is_protected:
                operation["security"] = [{"bearer": []}, {"apiKey": []}]
            responses = operation.setdefault("responses", {})
            for status in sorted(_statuses(path, operation, protected=is_protected)):
                responses[str(status)] = {
                    "description": _DESCRIPTIONS[status],
                    "content": {PROBLEM_CONTENT_TYPE: {"schema": problem_ref}},
                }
    metrics = schema.get("paths", {}).get("/metrics", {}).get("get")
    if metrics is not None:
        metrics["responses"]["200"]["content"] = {
            "text/plain": {"schema": {"type": "string"}, "example": "guard_requests_total 1.0"}
        }
    return schema


def install_openapi(app: FastAPI) -> None:
    """Serve :func:`build_openapi` (built once, on first request) as ``/openapi.json``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign] # FastAPI's documented override


# ---------------------------------------------------------------------------- the docs

#: Swagger UI's files, shipped in the fastapi-offline wheel (Swagger UI 5, Apache-2.0).
DOCS_ASSETS = files("fastapi_offline") / "static"
#: Everything the page loads comes from guard itself; no inline script.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - API docs</title>
<link rel="stylesheet" href="{root}/docs/assets/swagger-ui.css">
<link rel="icon" href="{root}/docs/assets/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{root}/docs/assets/swagger-ui-bundle.js"></script>
<script src="{root}/docs/swagger-init.js"></script>
</body>
</html>
"""

_DOCS_INIT = """window.ui = SwaggerUIBundle({{
  url: {openapi_url},
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: false,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
}});
"""


def install_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from guard's own files, under a strict Content-Security-Policy."""
    import json  # noqa: PLC0415 - only for the init script

    headers = {"Content-Security-Policy": DOCS_CSP, "X-Content-Type-Options": "nosniff"}

    async def docs_page(request: Request) -> Response:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return HTMLResponse(_DOCS_PAGE.format(title=app.title, root=root), headers=headers)

    async def docs_init(request: Request) -> Response:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        script = _DOCS_INIT.format(openapi_url=json.dumps(f"{root}{app.openapi_url}"))
        return Response(script, media_type="text/javascript", headers=headers)

    # Starlette routes, not API routes: pages, not operations of the contract
    app.add_route("/docs", docs_page, methods=["GET"], include_in_schema=False)
    app.add_route("/docs/swagger-init.js", docs_init, methods=["GET"], include_in_schema=False)
    app.mount("/docs/assets", StaticFiles(directory=str(DOCS_ASSETS)), name="docs-assets")
