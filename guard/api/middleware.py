"""ASGI middleware: request ids, errors, caching headers, a body-size limit, request metrics.

Order (outermost first): request id (so everything below logs and answers with it), caching
headers (so every answer, errors included, carries them), errors (an unexpected exception
becomes a 500 problem here and goes no further), the body limit, metrics.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import HTTPException

from guard.api.problems import PROBLEM_CONTENT_TYPE, problem_body, route_template

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from guard.api.metrics import Metrics

log = structlog.get_logger(__name__)

#: A client's ``X-Request-ID`` is kept only when it matches this (the audit checks it again).
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._\-]{8,64}")


class RequestIdMiddleware:
    """Use the caller's ``X-Request-ID`` when it is well-formed, else make one; echo it back.

    The id is bound to structlog's context variables for exactly the request: every log line
    written while serving it (worker threads included: Starlette runs sync routes in a copy of
    the request's context) carries it, and nothing bound by a request outlives it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Attach the id to the request state, the log context and the response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = header_of(scope, b"x-request-id")
        request_id = given if given and REQUEST_ID_PATTERN.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        # Start from an empty log context: the server's task may carry whatever its creator
        # had bound, and a line must never show another request's id.
        structlog.contextvars.clear_contextvars()
        try:
            with structlog.contextvars.bound_contextvars(request_id=request_id):
                await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.clear_contextvars()


class NoStoreMiddleware:
    """``Cache-Control: no-store`` and ``Pragma: no-cache`` on every response under ``prefix``.

    API responses carry customer data in clear (revealed text, records); no browser, proxy or
    shared cache may keep them, errors included.
    """

    def __init__(self, app: ASGIApp, *, prefix: str = "/v1") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add the headers when the response starts."""
        path = scope.get("path", "")
        if scope["type"] != "http" or not (
            path == self.prefix or path.startswith(self.prefix + "/")
        ):
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in {b"cache-control", b"pragma"}
                ]
                headers += [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_no_store)


class ErrorMiddleware:
    """Answer any unexpected exception with a 500 problem, log its type only, never re-raise.

    Starlette's own ServerErrorMiddleware renders the response and then re-raises, so the
    server logs the full traceback (which can quote request data) and drops the keep-alive
    connection; here the exception ends with the response and the connection stays usable.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; on an exception, answer 500 if nothing was sent yet."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - the last line: every failure becomes a 500
            # the type only: a message or a trace could quote the request
            log.error(  # noqa: TRY400 - no traceback: it could quote the request
                "request.failed",
                exception_type=type(exc).__name__,
                route=route_template(scope) or "unmatched",
                response_started=started,
            )
            if not started:
                await send_problem(
                    scope,
                    send,
                    500,
                    "internal",
                    "guard could not process this request; "
                    "the request id identifies it in guard's logs",
                )


class BodyLimitMiddleware:
    """Refuse bodies over ``limit`` bytes with 413, by header or while streaming them in.

    ``paths``: a limit of its own for particular paths (a streaming route reads its body
    chunk by chunk, so its cap is about time and disk, not memory).
    """

    def __init__(self, app: ASGIApp, *, limit: int, paths: dict[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.paths = dict(paths or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count the bytes of the body; answer 413 before the app sees too many."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.paths.get(scope.get("path", ""), self.limit)
        declared = header_of(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_problem(scope, send, 413, "input-too-large", _too_large(limit))
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLargeError:
            # raised where no route handled it (FastAPI routes answer it as an HTTPException)
            if not started:
                await send_problem(scope, send, 413, "input-too-large", _too_large(limit))


class BodyTooLargeError(HTTPException):
    """A streamed (e.g. chunked) body that went over the limit while it was read.

    An HTTPException, because FastAPI answers any other error raised while it reads a body
    with 400 "error parsing the body"; this way the route answers the documented 413.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=_too_large(limit), headers={"Connection": "close"})


class MetricsMiddleware:
    """Count requests and time them per route template (not per raw path: no ids in labels)."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Observe status and latency after the response starts."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observing_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observing_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(
                scope.get("method", "GET"), template, status, time.perf_counter() - started
            )


def header_of(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case), decoded as Latin-1."""
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _too_large(limit: int) -> str:
    return f"request body is over the limit of {limit} bytes (GUARD_MAX_BODY_BYTES)"


async def send_problem(scope: Scope, send: Send, status: int, slug: str, detail: str) -> None:
    """Answer a problem+json from pure ASGI middleware (outside FastAPI's handlers)."""
    state: dict[str, Any] = scope.get("state", {})
    body = json.dumps(problem_body({**scope, "state": state}, status, slug, detail)).encode()
    headers = [
        (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if status == 413:  # noqa: PLR2004 - the rest of an oversized body is not read
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
