"""ASGI middleware: every request ends in exactly one audit event with its true outcome.

Threat: a request that leaves no trace. Routes and ``requires()`` write their own events; but a
request can also end before or around them (a 404 of an unknown path, a 405, a body refused as
too large or malformed, an exception, a client that goes away), and a request whose path or
headers the audit field checks refused left no event at all, while its status told an attacker
whether a key worked. This middleware opens the request's audit state (see
:mod:`guard.audit.context`): every event written for the request marks it audited; when the
response starts (or an exception propagates, or the client goes away) and no event was written,
it writes one: action ``http.<method>``, resource the route template (``unmatched`` when no
route matched) with a keyed hash of the path parameters or of the raw path, decision ``deny``
unless an authenticated principal was authorised, the HTTP status and the problem slug in the
details. Refusals of unauthenticated clients go through the refusal throttle, which aggregates
repeats per client and window (see :mod:`guard.access.throttle`); the throttle's windows are
flushed by a small periodic task in the app's lifespan, and at shutdown.

The event is written before the response is let through, in a worker thread (the audit write is
a durable database commit), and a failed write fails closed: the client gets a 500 problem
instead of the response, and the log says only the exception's type.

Not audited: the routes that declare no permission (liveness, readiness, metrics, the docs and
the OpenAPI document and their assets; a test keeps that set closed). They carry no credentials
and no customer data, probes call them every few seconds (an event each would bury the trail),
and they are counted in the metrics.
"""

from __future__ import annotations

import json
import re
import uuid
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.to_thread
import structlog
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from guard.access.throttle import RefusalThrottle
from guard.api.middleware import REQUEST_ID_PATTERN, header_of
from guard.api.problems import PROBLEM_CONTENT_TYPE, TYPE_PREFIX
from guard.api.security import (
    AUDIT_STATE_KEY,
    THROTTLE_STATE_KEY,
    audit_resource,
    client_address_of,
    identify,
    permission_of,
)
from guard.audit.context import RequestAudit, request_audit_scope

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from guard.api.services import Services
    from guard.audit.service import AuditTrail

log = structlog.get_logger(__name__)

_METHOD: Final = re.compile(r"[A-Za-z]{1,16}")
_SLUG: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
#: Problem bodies larger than this are not read for their slug (guard's are a few hundred bytes).
_PROBLEM_BODY_LIMIT: Final = 64 * 1024
_FAILED_CLOSED_SLUG: Final = "audit-unavailable"
#: Seconds between flushes of closed refusal windows, at most (half a window if shorter).
_FLUSH_INTERVAL: Final = 5.0
_MIN_FLUSH_INTERVAL: Final = 0.05
_SERVER_ERROR: Final = 500
_CLIENT_ERROR: Final = 400
_THROTTLED: Final = 429
_DENIED: Final = frozenset({401, 403, 429})


class AuditMiddleware:
    """Guarantees one audit event per request; owns the refusal throttle."""

    def __init__(self, app: ASGIApp, *, services: Services) -> None:
        self.app = app
        self.services = services
        self.audit: AuditTrail = services.audit
        settings = services.settings
        self.throttle = RefusalThrottle(
            audit=services.audit,
            limit=settings.auth_failure_limit,
            window_seconds=settings.auth_failure_window_seconds,
            client_hash=services.audit.client_hash,
        )
        self._flush_every = max(
            _MIN_FLUSH_INTERVAL, min(_FLUSH_INTERVAL, settings.auth_failure_window_seconds / 2)
        )
        self._public: dict[int, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request inside its audit state; write its event if nothing else did."""
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        request_id = state.get("request_id")
        if not isinstance(request_id, str) or not REQUEST_ID_PATTERN.fullmatch(request_id):
            request_id = uuid.uuid4().hex
        given = header_of(scope, b"x-request-id")
        if given is not None and given == request_id:
            # the client chose this id (and any other client may choose it too): the events
            # get an id of guard's own, and the client's is kept beside it for correlation
            audit_state = RequestAudit(
                request_id=request_id, audit_request_id=uuid.uuid4().hex, correlation_id=given
            )
        else:
            audit_state = RequestAudit(request_id=request_id, audit_request_id=request_id)
        state[AUDIT_STATE_KEY] = audit_state
        state[THROTTLE_STATE_KEY] = self.throttle
        exchange = _Exchange(self, scope, audit_state, send)
        with request_audit_scope(audit_state):
            try:
                await self.app(scope, receive, exchange.send)
            except Exception:
                await exchange.finish(reason="exception")
                raise
            except BaseException:
                # cancelled: the client went away, or the server is stopping
                with anyio.CancelScope(shield=True):
                    await exchange.finish(reason="client-gone")
                raise
            await exchange.finish(reason="no-response")

    def is_public(self, scope: Scope) -> bool:
        """Whether the matched route declares no permission (health, metrics, docs)."""
        route = scope.get("route")
        if route is None:
            # Starlette's own routes and mounts (guard's /docs page and its static assets) set
            # only the endpoint they matched; FastAPI's API routes always set the route
            return scope.get("endpoint") is not None
        known = self._public.get(id(route))
        if known is None:
            if isinstance(route, Mount):
                known = isinstance(route.app, StaticFiles)
            elif isinstance(route, APIRoute):
                known = permission_of(route) is None
            else:  # a plain Starlette route: FastAPI's /docs, /redoc, /openapi.json
                known = True
            self._public[id(route)] = known
        return known

    async def write_event(
        self, scope: Scope, audit_state: RequestAudit, *, status: int, details: dict[str, Any]
    ) -> None:
        """Write the request's event (or count it in its client's aggregate)."""
        if audit_state.audited:
            return
        if audit_state.principal is None and _has_credentials(scope):
            # the request ended before requires() ran (404, 405, a body that is not JSON):
            # say who sent it if the credentials are good (they authorise nothing here)
            principal = await anyio.to_thread.run_sync(
                partial(identify, Request(scope), self.services)
            )
            if principal is not None:
                audit_state.principal = principal.id
                audit_state.role = principal.role
                audit_state.tenant = principal.tenant
        if audit_state.principal is None and _CLIENT_ERROR <= status < _SERVER_ERROR:
            first = await anyio.to_thread.run_sync(
                partial(self.throttle.refused, client_address_of(scope), status=status)
            )
            if not first:
                audit_state.mark_audited()
                return
        resource, path_details = audit_resource(scope, self.audit)
        method = str(scope.get("method", ""))
        authorised = audit_state.authorised and status not in _DENIED
        await anyio.to_thread.run_sync(
            partial(
                self.audit.record,
                action="http." + (method.lower() if _METHOD.fullmatch(method) else "other"),
                resource=resource,
                decision="allow" if authorised else "deny",
                outcome=(
                    "success"
                    if 0 < status < _CLIENT_ERROR
                    else "failure"
                    if _CLIENT_ERROR <= status < _SERVER_ERROR
                    else "error"
                ),
                principal=audit_state.principal,
                role=audit_state.role,
                tenant=audit_state.tenant,
                request_id=audit_state.request_id,
                details={**details, **path_details},
            )
        )
        audit_state.mark_audited()

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        stop = anyio.Event()

        async def flush_periodically() -> None:
            while not stop.is_set():
                with anyio.move_on_after(self._flush_every):
                    await stop.wait()
                if stop.is_set():
                    return
                await self._flush(self.throttle.flush_due)

        async def receive_and_flush_at_shutdown() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                stop.set()
                await self._flush(self.throttle.flush_all)
            return message

        async with anyio.create_task_group() as group:
            group.start_soon(flush_periodically)
            try:
                await self.app(scope, receive_and_flush_at_shutdown, send)
            finally:
                stop.set()

    @staticmethod
    async def _flush(flush: Any) -> None:  # noqa: ANN401 - a bound flush method
        try:
            await anyio.to_thread.run_sync(flush)
        except Exception as exc:  # noqa: BLE001 - kept for the next flush; the type is logged
            # the type only: a traceback could quote what the request carried
            log.error("audit.aggregate_flush_failed", exception_type=type(exc).__name__)  # noqa: TRY400


class _Exchange:
    """One request's response as it passes: held back until its audit event is written."""

    def __init__(
        self, middleware: AuditMiddleware, scope: Scope, audit_state: RequestAudit, send: Send
    ) -> None:
        self._middleware = middleware
        self._scope = scope
        self._state = audit_state
        self._send = send
        self._status: int | None = None
        self._started = False
        self._settled = False
        self._failed_closed = False
        self._held_start: Message | None = None
        self._held_body: list[bytes] = []
        self._held_size = 0

    def _needs_event(self) -> bool:
        return not (self._settled or self._state.audited or self._middleware.is_public(self._scope))

    async def send(self, message: Message) -> None:
        """Forward the response, writing the request's event before its first byte."""
        if self._failed_closed:
            return  # a 500 was sent in its place; the rest of the original is dropped
        if message["type"] == "http.response.start":
            self._status = int(message["status"])
            message = self._with_retry_after(message)
            if self._needs_event():
                if _is_problem(message):
                    self._held_start = message  # its body names the problem: read it first
                    return
                if not await self._settle(details={"status": self._status}):
                    return
            self._started = True
            await self._send(message)
            return
        if message["type"] == "http.response.body" and self._held_start is not None:
            chunk = bytes(message.get("body", b""))
            self._held_body.append(chunk)
            self._held_size += len(chunk)
            more = bool(message.get("more_body", False))
            if more and self._held_size <= _PROBLEM_BODY_LIMIT:
                return
            await self._release(more_body=more)
            return
        await self._send(message)

    async def finish(self, *, reason: str) -> None:
        """The app is done (or failed, or was cancelled): make sure the event exists."""
        if self._held_start is not None:
            await self._release(more_body=False)
            return
        if not self._needs_event():
            return
        if reason == "no-response" and self._started:
            return
        details: dict[str, Any] = {"reason": reason}
        if reason == "exception":
            details.update(status=self._status or _SERVER_ERROR, problem="internal")
        elif self._status is not None:
            details["status"] = self._status
        status = self._status or (_SERVER_ERROR if reason == "exception" else 0)
        try:
            self._settled = True
            await self._middleware.write_event(
                self._scope, self._state, status=status, details=details
            )
        except Exception as exc:  # noqa: BLE001 - nothing can be sent any more; say so in the log
            # the type only: a traceback could quote what the request carried
            log.error("audit.request_event_failed", exception_type=type(exc).__name__)  # noqa: TRY400

    async def _release(self, *, more_body: bool) -> None:
        start, self._held_start = self._held_start, None
        assert start is not None  # noqa: S101 - only called while a start is held
        body = b"".join(self._held_body)
        self._held_body.clear()
        details: dict[str, Any] = {"status": self._status}
        slug = None if more_body else _slug_of(body)
        if slug is not None:
            details["problem"] = slug
        if not await self._settle(details=details):
            return
        self._started = True
        await self._send(start)
        await self._send({"type": "http.response.body", "body": body, "more_body": more_body})

    async def _settle(self, *, details: dict[str, Any]) -> bool:
        """Write the event; on failure answer 500 instead (fail closed). True if written."""
        self._settled = True
        try:
            await self._middleware.write_event(
                self._scope, self._state, status=self._status or 0, details=details
            )
        except Exception as exc:  # noqa: BLE001 - fail closed below; the type only is logged
            # the type only: a traceback could quote what the request carried
            log.error("audit.request_event_failed", exception_type=type(exc).__name__)  # noqa: TRY400
            await self._fail_closed()
            return False
        return True

    async def _fail_closed(self) -> None:
        self._failed_closed = True
        body = json.dumps(
            {
                "type": TYPE_PREFIX + _FAILED_CLOSED_SLUG,
                "title": "Internal error",
                "status": _SERVER_ERROR,
                "detail": "guard could not record this request in its audit trail, so it was "
                "not answered; the request id identifies it in guard's logs",
                "request_id": self._state.request_id,
            }
        ).encode()
        await self._send(
            {
                "type": "http.response.start",
                "status": _SERVER_ERROR,
                "headers": [
                    (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await self._send({"type": "http.response.body", "body": body})

    def _with_retry_after(self, message: Message) -> Message:
        """A 429 of the failure limit says when to come back."""
        retry_after = self._state.retry_after
        if self._status != _THROTTLED or retry_after is None:
            return message
        headers = list(message.get("headers", []))
        if any(key.lower() == b"retry-after" for key, _ in headers):
            return message
        headers.append((b"retry-after", str(retry_after).encode()))
        return {**message, "headers": headers}


def _has_credentials(scope: Scope) -> bool:
    return any(key in (b"authorization", b"x-api-key") for key, _ in scope.get("headers", []))


def _is_problem(message: Message) -> bool:
    for key, value in message.get("headers", []):
        if key.lower() == b"content-type":
            return bool(value.decode("latin-1").startswith(PROBLEM_CONTENT_TYPE))
    return False


def _slug_of(body: bytes) -> str | None:
    """The problem slug of a problem+json body (validated: it enters the audit trail)."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    kind = document.get("type") if isinstance(document, dict) else None
    if not isinstance(kind, str) or not kind.startswith(TYPE_PREFIX):
        return None
    slug = kind.removeprefix(TYPE_PREFIX)
    return slug if _SLUG.fullmatch(slug) else None
