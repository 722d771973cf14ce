"""Errors as RFC 9457 ``application/problem+json``: a stable type, a precise detail, a request id.

Nothing the client sent is echoed back: a validation error names the field that is wrong and
why, never its value (which may be the very PII guard exists to protect). Field names the
client chose (an unknown key, a key inside a free-form object) are replaced by ``<key>``, and
``instance`` is the route template (``/v1/records/{record_id}``), never the raw path. An
unexpected error is answered by :class:`guard.api.middleware.ErrorMiddleware`, which says only
that it happened and under which request id to look in the logs.
"""

from __future__ import annotations

import types
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args, get_origin

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel
from starlette._utils import get_route_path
from starlette.exceptions import HTTPException as StarletteHTTPException

from guard.errors import GuardError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from starlette.types import Scope

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:guard:problem:"
#: Stands for a location part the client chose (a key of its own): never echoed.
CLIENT_KEY = "<key>"

_HTTP_SLUGS = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    410: "gone",
    413: "input-too-large",
    415: "unsupported-media-type",
    422: "invalid-input",
    429: "too-many-requests",
    502: "bad-gateway",
    503: "unavailable",
    504: "gateway-timeout",
}
_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal error",
    502: "Upstream failed",
    503: "Service unavailable",
    504: "Upstream timed out",
}
_SOURCES = frozenset({"body", "query", "path", "header", "cookie"})
_JSON_HINT = " (send the body as JSON with the header 'Content-Type: application/json')"


def title_for(status: int) -> str:
    """A human title for every status: guard's own wording, else the HTTP reason phrase."""
    if status in _TITLES:
        return _TITLES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def route_template(scope: Scope) -> str | None:
    """The matched route's template (``/v1/records/{record_id}``); None before routing."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else None


def problem_body(
    scope: Scope,
    status: int,
    slug: str,
    detail: str,
    *,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The problem document: ``instance`` is the route template, or left out when unmatched."""
    state: Mapping[str, Any] = scope.get("state") or {}
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + slug,
        "title": title_for(status),
        "status": status,
        "detail": detail,
    }
    template = route_template(scope)
    if template is not None:
        body["instance"] = template
    body["request_id"] = state.get("request_id")
    if extra:
        body.update(extra)
    return body


def problem(
    request: Request,
    status: int,
    slug: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """A problem+json response carrying the request id."""
    return JSONResponse(
        problem_body(request.scope, status, slug, detail, extra=extra),
        status_code=status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=dict(headers or {}),
    )


# ----------------------------------------------------------------- locations without input


def _candidates(annotation: object) -> Iterator[object]:
    """The types an annotation may stand for: unions and ``Annotated`` unwrapped."""
    origin = get_origin(annotation)
    if origin is Annotated:
        yield from _candidates(get_args(annotation)[0])
    elif origin is Union or origin is types.UnionType:
        for arg in get_args(annotation):
            yield from _candidates(arg)
    else:
        yield annotation


def _field_annotation(annotation: object, name: str) -> tuple[bool, object]:
    """(True, the field's annotation) when ``name`` is a field of the model ``annotation``."""
    for candidate in _candidates(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            for field_name, info in candidate.model_fields.items():
                if name in {field_name, info.alias}:
                    return True, info.annotation
    return False, None


def _item_annotation(annotation: object) -> object:
    for candidate in _candidates(annotation):
        if get_origin(candidate) in {list, tuple, set, frozenset}:
            args = get_args(candidate)
            return args[0] if args else None
    return None


def _body_annotation(route: object) -> object:
    field = getattr(route, "body_field", None)
    info = getattr(field, "field_info", None)
    return getattr(info, "annotation", None)


def safe_location(loc: Sequence[Any], route: object | None) -> tuple[str | int, ...]:
    """``loc`` with every part the client chose replaced by ``<key>``.

    A part is kept only when guard declared it: the source (``body``, ``query``...), a field of
    the route's body model (followed through nested models and lists), a declared parameter
    name, or a list index. An unknown key, or a key of a free-form object, is the client's.
    """
    parts = list(loc)
    if not parts or parts[0] not in _SOURCES:
        return tuple(p if isinstance(p, int) else CLIENT_KEY for p in parts)
    out: list[str | int] = [str(parts[0])]
    if parts[0] != "body":
        # query, path, header and cookie errors are only raised for declared parameters
        if len(parts) > 1:
            out.append(str(parts[1]))
        out.extend(p if isinstance(p, int) else CLIENT_KEY for p in parts[2:])
        return tuple(out)
    annotation = _body_annotation(route)
    for part in parts[1:]:
        if isinstance(part, int):
            out.append(part)
            annotation = _item_annotation(annotation)
            continue
        known, annotation = _field_annotation(annotation, str(part))
        out.append(str(part) if known else CLIENT_KEY)
    return tuple(out)


def field_name(loc: Sequence[Any], route: object | None) -> str:
    """A location as a dotted field name (``body.texts.1``), client-chosen parts hidden."""
    return ".".join(str(part) for part in safe_location(loc, route)) or "(request)"


# ----------------------------------------------------------------------------- handlers


class BodyRejectedError(StarletteHTTPException):
    """A request body refused while it was read or decoded (before model validation).

    An HTTPException, because FastAPI turns any other error raised while reading the body into
    a 400 "error parsing the body"; ``loc`` is the raw location, sanitised when answered.
    """

    def __init__(
        self, status_code: int, *, slug: str, loc: Sequence[str | int], problem: str
    ) -> None:
        super().__init__(status_code=status_code, detail=problem)
        self.slug = slug
        self.loc = tuple(loc)
        self.problem = problem


async def _guard_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GuardError)  # noqa: S101 - registered for GuardError only
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None  # noqa: PLR2004
    # all analysis workers busy, a tool budget spent: say when to come back
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int) and not isinstance(retry_after, bool):
        headers = {"Retry-After": str(retry_after)}
    return problem(request, exc.status_code, exc.type_slug, exc.message, headers=headers)


def _is_json(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _problem_of(error: Mapping[str, Any], route: object | None) -> dict[str, str]:
    loc = tuple(error.get("loc", ()))
    if error.get("type") == "json_invalid":
        position = loc[1] if len(loc) > 1 else "?"
        reason = (error.get("ctx") or {}).get("error", "malformed")
        return {"field": "body", "problem": f"invalid JSON at character {position}: {reason}"}
    return {"field": field_name(loc, route), "problem": str(error.get("msg", "invalid"))}


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for it only
    route = request.scope.get("route")
    errors = [_problem_of(e, route) for e in exc.errors()]
    first = errors[0] if errors else {"field": "(request)", "problem": "invalid"}
    detail = f"{first['field']}: {first['problem']}"
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more)"
    if not _is_json(request) and any(e["field"] == "body" for e in errors):
        detail += _JSON_HINT
    return problem(request, 422, "invalid-input", detail, extra={"errors": errors})


def allowed_methods(scope: Scope) -> list[str]:
    """Every method some route serves at this path (Starlette's 405 names only the first)."""
    path = get_route_path(scope)
    methods: set[str] = set()
    for context in iter_route_contexts(scope["app"].routes):
        regex = getattr(context, "path_regex", None)
        if context.methods and regex is not None and regex.match(path):
            methods.update(context.methods)
    return sorted(methods)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for it only
    headers = dict(exc.headers or {})
    if isinstance(exc, BodyRejectedError):
        field = field_name(exc.loc, request.scope.get("route"))
        return problem(
            request,
            exc.status_code,
            exc.slug,
            f"{field}: {exc.problem}",
            headers=headers,
            extra={"errors": [{"field": field, "problem": exc.problem}]},
        )
    if exc.status_code == 400 and exc.__cause__ is not None:  # noqa: PLR2004
        # FastAPI's "error parsing the body" on a route without strict decoding (GuardRoute):
        # the body is the client's mistake, answered like every other bad body
        return _undecodable_body(request, exc.__cause__)
    slug = _HTTP_SLUGS.get(exc.status_code, "http-error")
    detail = exc.detail if isinstance(exc.detail, str) else title_for(exc.status_code)
    if exc.status_code == 405:  # noqa: PLR2004
        allow = allowed_methods(request.scope)
        headers["Allow"] = ", ".join(allow)
        detail = f"this method is not allowed at this path; allowed: {', '.join(allow)}"
    return problem(request, exc.status_code, slug, detail, headers=headers)


def _undecodable_body(request: Request, cause: BaseException) -> JSONResponse:
    if isinstance(cause, UnicodeDecodeError):
        reason = "the body is not valid UTF-8"
    elif isinstance(cause, RecursionError):
        reason = "JSON nested too deep to decode (GUARD_MAX_JSON_DEPTH)"
    else:
        reason = f"the body could not be decoded ({type(cause).__name__})"
    return problem(
        request,
        422,
        "invalid-input",
        f"body: {reason}",
        extra={"errors": [{"field": "body", "problem": reason}]},
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Route every deliberate error through problem+json (unexpected ones: ErrorMiddleware)."""
    app.add_exception_handler(GuardError, _guard_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
