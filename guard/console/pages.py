"""The console's pages: overview, audit, verify, incidents, subjects, keys; sign-in, sign-out.

Every page is authorized by the same Casbin permissions as the API (a page's dependency says
which, so the route table test sees it) and every view, search, export and action is an audit
event of the officer (the auditor is audited). Forms are plain HTML posts with the session's
CSRF token; there is no script at all, so the Content-Security-Policy allows none. Pages call
the same services as the API (AuditTrail, IncidentService): one implementation per concern.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from guard.access.errors import AuthenticationError
from guard.access.permissions import (
    AUDIT_EXPORT,
    AUDIT_READ,
    AUDIT_VERIFY,
    INCIDENTS_NOTIFY,
    INCIDENTS_READ,
    INCIDENTS_UPDATE,
    SUBJECTS_READ,
    Permission,
)
from guard.api.security import (
    authenticate_credential,
    redacted_reason,
    request_id_of,
    services_of,
)
from guard.audit.repository import AuditRepository
from guard.audit.schemas import AuditFilters, AuditPage
from guard.console.sessions import SessionStore, SignedIn, csrf_matches
from guard.errors import GuardError
from guard.incidents.endpoints import incidents_of
from guard.incidents.models import STATUSES
from guard.storage.engine import session_scope
from guard.subjects.deadlines import clock_words
from guard.subjects.endpoints import subjects_of
from guard.subjects.models import REQUEST_KINDS

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from guard.subjects.schemas import SubjectRequestRead

HERE = Path(__file__).resolve().parent
COOKIE = "guard_console"
LOGIN_COOKIE = "guard_console_login"
PAGE_SIZE = 50
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
SEVERITIES = ("informational", "low", "medium", "high", "critical")
HOURS = 24
#: A stated reason shorter than this is no reason.
MIN_REASON = 3
#: A cursor is a sequence number: digits, at most 18 of them.
_MAX_CURSOR_DIGITS = 18

router = APIRouter(prefix="/console", include_in_schema=False)
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["utc"] = UTC


class NotSignedInError(Exception):
    """No live session: the page answers with a redirect to sign-in."""


class NotAllowedError(Exception):
    """The officer's role may not see this page: a 403 page."""

    def __init__(self, officer: SignedIn) -> None:
        super().__init__("not allowed")
        self.officer = officer


@dataclass(frozen=True)
class Officer:
    """The signed-in caller of a page, with the request's id for the audit."""

    signed_in: SignedIn
    request_id: str
    zone: ZoneInfo

    @property
    def tenant(self) -> str:
        """The officer's tenant: every page shows only its data."""
        return self.signed_in.principal.tenant


# ---------------------------------------------------------------------- plumbing


def sessions_of(request: Request) -> SessionStore:
    """The app's console session store (``app.state.console_sessions``)."""
    state = request.app.state
    store: SessionStore | None = getattr(state, "console_sessions", None)
    if store is None:
        services = services_of(request)
        store = SessionStore(services.settings, services.session_factory)
        state.console_sessions = store
    return store


def _zone(request: Request) -> ZoneInfo:
    try:
        return ZoneInfo(incidents_of(request).policy.timezone)
    except GuardError:
        return ZoneInfo("UTC")


def page(permission: Permission) -> Callable[[Request], Officer]:
    """A dependency: the signed-in officer, allowed ``permission`` (else redirect or 403)."""

    def check(request: Request) -> Officer:
        signed_in = sessions_of(request).find(request.cookies.get(COOKIE))
        if signed_in is None:
            raise NotSignedInError
        services = services_of(request)
        decision = services.access.enforce(signed_in.principal, permission)
        if not decision.allowed:
            _audit(
                request,
                signed_in,
                "console.denied",
                decision="deny",
                outcome="failure",
                details={"reason": "forbidden", "status": 403},
            )
            raise NotAllowedError(signed_in)
        return Officer(signed_in, request_id_of(request), _zone(request))

    check.permission = permission  # type: ignore[attr-defined] # read by permission_of()
    return check


def _audit(
    request: Request,
    officer: SignedIn,
    action: str,
    *,
    decision: str = "allow",
    outcome: str = "success",
    customer: str | None = None,
    details: dict[str, str | int | bool] | None = None,
) -> None:
    principal = officer.principal
    route = getattr(request.scope.get("route"), "path", None) or "/console"
    services_of(request).audit.record(
        action=action,
        resource=str(route),
        decision=decision,
        outcome=outcome,
        principal=principal.id,
        role=principal.role,
        tenant=principal.tenant,
        request_id=request_id_of(request),
        customer=customer,
        details={"door": "console", **(details or {})},
    )


def _viewed(request: Request, officer: Officer, action: str, **details: str | int | bool) -> None:
    _audit(request, officer.signed_in, action, details=details)


def _render(
    request: Request,
    name: str,
    officer: Officer | None,
    status_code: int = 200,
    **context: Any,  # noqa: ANN401 - template values
) -> HTMLResponse:
    context.update(
        officer=officer.signed_in if officer else None,
        csrf=officer.signed_in.csrf_token if officer else None,
        zone=officer.zone if officer else ZoneInfo("UTC"),
    )
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def _check_csrf(request: Request, officer: Officer, token: str | None) -> None:
    """A form post must carry the session's CSRF token; a refusal is audited."""
    if not csrf_matches(officer.signed_in.csrf_token, token):
        _audit(
            request,
            officer.signed_in,
            "console.denied",
            decision="deny",
            outcome="failure",
            details={"reason": "csrf", "status": 403},
        )
        raise NotAllowedError(officer.signed_in)


Csrf = Annotated[str | None, Form(alias="csrf_token")]


class SecurityHeaders:
    """Add the console's security headers to every ``/console`` response (pure ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass through; on /console responses replace those headers by the console's."""
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith("/console"):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in SECURITY_HEADERS}
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = headers + list(SECURITY_HEADERS)
            await send(message)

        await self.app(scope, receive, with_headers)


def install_console(app: FastAPI) -> None:
    """Mount the console: its pages, static files, error pages and security headers."""
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.include_router(router)

    async def to_sign_in(_request: Request, _exc: Exception) -> Response:
        return RedirectResponse("/console/login", status_code=303)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        officer = exc.officer if isinstance(exc, NotAllowedError) else None
        context = {
            "officer": officer,
            "csrf": officer.csrf_token if officer else None,
            "zone": ZoneInfo("UTC"),
        }
        return templates.TemplateResponse(request, "forbidden.html", context, status_code=403)

    app.add_exception_handler(NotSignedInError, to_sign_in)
    app.add_exception_handler(NotAllowedError, not_allowed)
    app.add_middleware(SecurityHeaders)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


# ---------------------------------------------------------------------- sign-in, sign-out


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    """The sign-in form (a pre-session CSRF token in a cookie and the form: double submit)."""
    import secrets  # noqa: PLC0415

    token = secrets.token_urlsafe(32)
    response = templates.TemplateResponse(
        request, "login.html", {"officer": None, "csrf": token, "zone": ZoneInfo("UTC")}
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/console/login",
    )
    return response


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    api_key: Annotated[str, Form(max_length=4096)] = "",
    csrf_token: Csrf = None,
) -> Response:
    """Sign in with an API key (or a JWT); a new session, a new cookie, audited either way."""
    services = services_of(request)
    expected = request.cookies.get(LOGIN_COOKIE)
    if expected is None or not csrf_matches(expected, csrf_token):
        return _failed_sign_in(request, "the form expired; please try again", status_code=403)
    try:
        principal = authenticate_credential(api_key.strip(), services)
    except AuthenticationError as exc:
        services.audit.record(
            action="console.login",
            resource="/console/login",
            decision="deny",
            outcome="failure",
            request_id=request_id_of(request),
            details={"door": "console", "reason": exc.audit_reason, "status": 401},
        )
        return _failed_sign_in(request, "Sign-in failed", status_code=401)
    token, signed_in = sessions_of(request).open(principal)
    _audit(request, signed_in, "console.login")
    response = RedirectResponse("/console", status_code=303)
    response.delete_cookie(LOGIN_COOKIE, path="/console/login")
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/console",
        max_age=int(services.settings.console_session_hours * 3600),
    )
    return response


def _failed_sign_in(request: Request, message: str, *, status_code: int) -> Response:
    response = login_form(request)
    body = templates.TemplateResponse(
        request,
        "login.html",
        {
            "officer": None,
            "csrf": _cookie_token(response),
            "zone": ZoneInfo("UTC"),
            "error": message,
        },
        status_code=status_code,
    )
    for key, value in response.raw_headers:
        if key == b"set-cookie":
            body.raw_headers.append((key, value))
    return body


def _cookie_token(response: Response) -> str:
    for key, value in response.raw_headers:
        if key == b"set-cookie" and value.startswith(LOGIN_COOKIE.encode() + b"="):
            return value.split(b";", 1)[0].split(b"=", 1)[1].decode()
    return ""


@router.post("/logout")
def logout(request: Request, csrf_token: Csrf = None) -> Response:
    """Sign out: the session ends on the server and the cookie is cleared."""
    store = sessions_of(request)
    token = request.cookies.get(COOKIE)
    signed_in = store.find(token)
    if signed_in is not None:
        if not csrf_matches(signed_in.csrf_token, csrf_token):
            raise NotAllowedError(signed_in)
        store.close(token)
        _audit(request, signed_in, "console.logout")
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response


# ---------------------------------------------------------------------- overview


@dataclass(frozen=True)
class HourBar:
    """One hour of the last day: denials and blocked messages."""

    start: datetime
    denials: int
    blocked: int


@router.get("", response_class=HTMLResponse)
def overview(request: Request, officer: Annotated[Officer, Depends(page(AUDIT_READ))]) -> Response:
    """Chain status, open incidents with their clocks, the last 24 hours of refusals."""
    services = services_of(request)
    now = datetime.now(UTC)
    with session_scope(services.session_factory) as session:
        repo = AuditRepository(session)
        head = repo.head_row()
        checkpoint = repo.last_checkpoint()
        verify = repo.latest("audit.verify", tenant=officer.tenant)
        last_verify = (
            None
            if verify is None
            else {"seq": verify.seq, "ts": verify.ts, "ok": json.loads(verify.details).get("ok")}
        )
        start = (now - timedelta(hours=23)).replace(minute=0, second=0, microsecond=0)
        denials = repo.since(start, tenant=officer.tenant, decision="deny")
        checks = repo.since(start, tenant=officer.tenant, action="message.check")
    bars = _hours(start, denials, checks)
    allowed = services.access.enforce(officer.signed_in.principal, INCIDENTS_READ).allowed
    open_incidents = []
    if allowed:
        page_ = incidents_of(request).list_incidents(tenant=officer.tenant, limit=200)
        open_incidents = [i for i in page_.incidents if i.status not in ("resolved", "closed")]
    _viewed(request, officer, "console.overview")
    return _render(
        request,
        "overview.html",
        officer,
        head=head,
        checkpoint=checkpoint,
        last_verify=last_verify,
        bars=bars,
        peak=max([1, *(b.denials + b.blocked for b in bars)]),
        incidents=open_incidents,
        incidents_allowed=allowed,
    )


def _hours(start: datetime, denials: Any, checks: Any) -> list[HourBar]:  # noqa: ANN401 - rows
    counts = {i: [0, 0] for i in range(HOURS)}
    for row in denials:
        index = int((row.ts - start).total_seconds() // 3600)
        if 0 <= index < HOURS:
            counts[index][0] += 1
    for row in checks:
        index = int((row.ts - start).total_seconds() // 3600)
        if 0 <= index < HOURS and '"verdict":"block"' in row.details:
            counts[index][1] += 1
    return [
        HourBar(start=start + timedelta(hours=i), denials=d, blocked=b)
        for i, (d, b) in counts.items()
    ]


# ---------------------------------------------------------------------- audit search


@dataclass
class SearchForm:
    """The audit search form as typed, and what it means."""

    values: dict[str, str]
    filters: AuditFilters | None
    error: str | None


_SEARCH_FIELDS = (
    "since",
    "until",
    "principal",
    "role",
    "action",
    "decision",
    "outcome",
    "customer",
)


def _search_form(request: Request, officer: Officer) -> SearchForm:
    values = {name: request.query_params.get(name, "").strip()[:200] for name in _SEARCH_FIELDS}
    try:
        filters = AuditFilters(
            since=_local_time(values["since"], officer.zone, "From"),
            until=_local_time(values["until"], officer.zone, "Until"),
            principal=values["principal"] or None,
            role=values["role"] or None,
            tenant=officer.tenant,
            action=values["action"] or None,
            decision=_choice(values["decision"], ("allow", "deny"), "Decision"),
            outcome=_choice(values["outcome"], ("success", "failure", "error"), "Outcome"),
            customer=values["customer"] or None,
        )
    except ValueError as exc:
        return SearchForm(values=values, filters=None, error=str(exc))
    return SearchForm(values=values, filters=filters, error=None)


def _local_time(value: str, zone: ZoneInfo, label: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        msg = f"{label}: expected a date and time such as 2026-12-05T09:30"
        raise ValueError(msg) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)).astimezone(UTC)


def _choice(value: str, allowed: tuple[str, ...], label: str) -> Any:  # noqa: ANN401 - Literal
    if not value:
        return None
    if value not in allowed:
        msg = f"{label}: one of {', '.join(allowed)}"
        raise ValueError(msg)
    return value


def _cursor(request: Request) -> int | None:
    raw = request.query_params.get("cursor", "")
    return int(raw) if raw.isdigit() and len(raw) <= _MAX_CURSOR_DIGITS else None


@router.get("/audit", response_class=HTMLResponse)
def audit_search(
    request: Request, officer: Annotated[Officer, Depends(page(AUDIT_READ))]
) -> Response:
    """Search the tenant's events: filters, cursor paging, links to each event."""
    form = _search_form(request, officer)
    result: AuditPage | None = None
    if form.filters is not None:
        result = services_of(request).audit.search(
            form.filters, limit=PAGE_SIZE, cursor=_cursor(request)
        )
        used = [name for name in _SEARCH_FIELDS if form.values[name]]
        _audit(
            request,
            officer.signed_in,
            "audit.search",
            customer=form.filters.customer,
            details={"filters": ",".join(used), "results": len(result.events)},
        )
    query = {k: v for k, v in form.values.items() if v}
    return _render(
        request,
        "audit.html",
        officer,
        form=form,
        result=result,
        query=query,
        status_code=200 if form.error is None else 400,
    )


@router.get("/audit/events/{seq}", response_class=HTMLResponse)
def audit_event(
    request: Request, seq: int, officer: Annotated[Officer, Depends(page(AUDIT_READ))]
) -> Response:
    """One event of the tenant, every field (the customer as its keyed hash)."""
    found = None
    if 0 < seq < 2**62:
        result = services_of(request).audit.search(
            AuditFilters(tenant=officer.tenant), limit=1, cursor=seq - 1
        )
        found = next((e for e in result.events if e.seq == seq), None)
    _viewed(request, officer, "console.event", results=int(found is not None))
    if found is None:
        return _render(request, "not_found.html", officer, status_code=404, what="event")
    return _render(request, "event.html", officer, event=found)


@router.get("/audit/export")
def audit_export(
    request: Request, officer: Annotated[Officer, Depends(page(AUDIT_EXPORT))]
) -> Response:
    """The current filter's events as CSV or JSONL, streamed (audited with the filters)."""
    form = _search_form(request, officer)
    fmt = request.query_params.get("format", "csv")
    if form.filters is None or fmt not in ("csv", "jsonl"):
        return _render(
            request, "audit.html", officer, form=form, result=None, query={}, status_code=400
        )
    trail = services_of(request).audit
    used = [name for name in _SEARCH_FIELDS if form.values[name]]
    _audit(
        request,
        officer.signed_in,
        "audit.export",
        customer=form.filters.customer,
        details={"filters": ",".join(used), "format": fmt},
    )
    lines = trail.export_lines(form.filters, "csv" if fmt == "csv" else "jsonl")
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
    return StreamingResponse(
        lines,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="audit-events.{fmt}"'},
    )


# ---------------------------------------------------------------------- verify


@router.get("/verify", response_class=HTMLResponse)
def verify_page(
    request: Request, officer: Annotated[Officer, Depends(page(AUDIT_VERIFY))]
) -> Response:
    """The verify button and the evidence bundle form."""
    _viewed(request, officer, "console.verify")
    return _render(request, "verify.html", officer, report=None)


@router.post("/verify", response_class=HTMLResponse)
def verify_now(
    request: Request,
    officer: Annotated[Officer, Depends(page(AUDIT_VERIFY))],
    csrf_token: Csrf = None,
) -> Response:
    """Verify the whole chain now; the result is an audit event (rules watch for failures)."""
    _check_csrf(request, officer, csrf_token)
    report = services_of(request).audit.verify()
    _audit(
        request,
        officer.signed_in,
        "audit.verify",
        outcome="success" if report.ok else "failure",
        details={
            "events": report.events_checked,
            "ok": report.ok,
            "from_seq": report.verified_from_seq or 1,
        },
    )
    return _render(request, "verify.html", officer, report=report)


@router.post("/verify/bundle")
def evidence_bundle(
    request: Request,
    officer: Annotated[Officer, Depends(page(AUDIT_VERIFY))],
    first_seq: Annotated[str, Form(max_length=20)] = "",
    last_seq: Annotated[str, Form(max_length=20)] = "",
    csrf_token: Csrf = None,
) -> Response:
    """A signed evidence bundle of a range of events (ZIP), for a regulator or an auditor."""
    _check_csrf(request, officer, csrf_token)
    trail = services_of(request).audit
    try:
        first, last = int(first_seq), int(last_seq)
        bundle = trail.evidence_bundle(first_seq=first, last_seq=last)
    except (ValueError, GuardError) as exc:
        message = exc.message if isinstance(exc, GuardError) else "From seq and To seq: numbers"
        return _render(
            request, "verify.html", officer, report=None, bundle_error=message, status_code=400
        )
    _audit(
        request,
        officer.signed_in,
        "audit.bundle",
        details={"first_seq": first, "last_seq": last},
    )
    return Response(
        bundle,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="evidence-{first}-{last}.zip"'},
    )


# ---------------------------------------------------------------------- incidents


@router.get("/incidents", response_class=HTMLResponse)
def incidents_list(
    request: Request, officer: Annotated[Officer, Depends(page(INCIDENTS_READ))]
) -> Response:
    """Incidents with their clocks; filters by status and severity."""
    status = request.query_params.get("status", "")
    severity = request.query_params.get("severity", "")
    listed = incidents_of(request).list_incidents(
        tenant=officer.tenant,
        status=status if status in STATUSES else None,
        severity=severity if severity in SEVERITIES else None,
        limit=200,
    )
    _viewed(request, officer, "console.incidents", results=len(listed.incidents))
    return _render(
        request,
        "incidents.html",
        officer,
        incidents=listed.incidents,
        status=status,
        severity=severity,
        statuses=STATUSES,
        severities=SEVERITIES,
    )


def _incident_page(
    request: Request,
    officer: Officer,
    incident_id: str,
    **extra: Any,  # noqa: ANN401
) -> Response:
    detail = incidents_of(request).get(tenant=officer.tenant, incident_id=incident_id)
    access = services_of(request).access
    can_update = access.enforce(officer.signed_in.principal, INCIDENTS_UPDATE).allowed
    can_notify = access.enforce(officer.signed_in.principal, INCIDENTS_NOTIFY).allowed
    later = STATUSES[STATUSES.index(detail.status) + 1 :]
    return _render(
        request,
        "incident.html",
        officer,
        incident=detail,
        next_statuses=later,
        can_update=can_update,
        can_notify=can_notify,
        **extra,
    )


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
def incident_detail(
    request: Request, incident_id: str, officer: Annotated[Officer, Depends(page(INCIDENTS_READ))]
) -> Response:
    """One incident: clocks, evidence, runbook checklist, timeline, notices."""
    try:
        response = _incident_page(request, officer, incident_id)
    except GuardError:
        _viewed(request, officer, "console.incident", results=0)
        return _render(request, "not_found.html", officer, status_code=404, what="incident")
    _viewed(request, officer, "incidents.read")
    return response


def _incident_action(
    request: Request,
    officer: Officer,
    incident_id: str,
    csrf_token: str | None,
    action: str,
    run: Callable[[], object],
    **details: str | int | bool,
) -> Response:
    _check_csrf(request, officer, csrf_token)
    try:
        run()
    except GuardError as exc:
        _audit(
            request,
            officer.signed_in,
            action,
            outcome="failure",
            details={"reason": exc.type_slug, **details},
        )
        try:
            return _incident_page(
                request, officer, incident_id, error=exc.message, status_code=exc.status_code
            )
        except GuardError:
            return _render(request, "not_found.html", officer, status_code=404, what="incident")
    _audit(request, officer.signed_in, action, details=details)
    return RedirectResponse(f"/console/incidents/{incident_id}", status_code=303)


@router.post("/incidents/{incident_id}/transition")
def incident_transition(
    request: Request,
    incident_id: str,
    officer: Annotated[Officer, Depends(page(INCIDENTS_UPDATE))],
    status: Annotated[str, Form(max_length=16)] = "",
    csrf_token: Csrf = None,
) -> Response:
    """Move the incident forward (the same rules as the API: 409 for anything else)."""
    service = incidents_of(request)
    return _incident_action(
        request,
        officer,
        incident_id,
        csrf_token,
        "incidents.transition",
        lambda: service.transition(
            tenant=officer.tenant,
            incident_id=incident_id,
            status=status,
            actor=officer.signed_in.principal.id,
        ),
        to=status if status in STATUSES else "invalid",
    )


@router.post("/incidents/{incident_id}/notes")
def incident_note(
    request: Request,
    incident_id: str,
    officer: Annotated[Officer, Depends(page(INCIDENTS_UPDATE))],
    note: Annotated[str, Form(max_length=4000)] = "",
    csrf_token: Csrf = None,
) -> Response:
    """Add a note (redacted before it is stored)."""
    service = incidents_of(request)

    def add() -> object:
        if not note.strip():
            raise _EmptyNoteError("Note: write something first")
        return service.add_note(
            tenant=officer.tenant,
            incident_id=incident_id,
            note=note,
            actor=officer.signed_in.principal.id,
        )

    return _incident_action(request, officer, incident_id, csrf_token, "incidents.note", add)


class _EmptyNoteError(GuardError):
    status_code = 400
    type_slug = "invalid-input"


@router.post("/incidents/{incident_id}/steps/{step_id}")
def incident_step(
    request: Request,
    incident_id: str,
    step_id: str,
    officer: Annotated[Officer, Depends(page(INCIDENTS_UPDATE))],
    done: Annotated[str, Form(max_length=5)] = "true",
    csrf_token: Csrf = None,
) -> Response:
    """Tick (or untick) a runbook step."""
    service = incidents_of(request)
    is_done = done == "true"
    return _incident_action(
        request,
        officer,
        incident_id,
        csrf_token,
        "incidents.step",
        lambda: service.tick(
            tenant=officer.tenant,
            incident_id=incident_id,
            step_id=step_id[:64],
            actor=officer.signed_in.principal.id,
            done=is_done,
        ),
        step=step_id[:64],
        done=is_done,
    )


@router.post("/incidents/{incident_id}/notified")
def incident_notified(
    request: Request,
    incident_id: str,
    officer: Annotated[Officer, Depends(page(INCIDENTS_UPDATE))],
    party: Annotated[str, Form(max_length=16)] = "",
    csrf_token: Csrf = None,
) -> Response:
    """Record that the authority or the customers were notified."""
    service = incidents_of(request)
    if party not in ("authority", "customers"):
        party = "authority"
    return _incident_action(
        request,
        officer,
        incident_id,
        csrf_token,
        "incidents.notified",
        lambda: service.mark_notified(
            tenant=officer.tenant,
            incident_id=incident_id,
            party=party,
            actor=officer.signed_in.principal.id,
        ),
        party=party,
    )


@router.get("/incidents/{incident_id}/notices/authority", response_class=HTMLResponse)
def incident_authority_notice(
    request: Request, incident_id: str, officer: Annotated[Officer, Depends(page(INCIDENTS_READ))]
) -> Response:
    """The draft to the supervisory authority (no customer data in it)."""
    try:
        text = incidents_of(request).authority_notice(
            tenant=officer.tenant, incident_id=incident_id
        )
        detail = incidents_of(request).get(tenant=officer.tenant, incident_id=incident_id)
    except GuardError:
        return _render(request, "not_found.html", officer, status_code=404, what="incident")
    _viewed(request, officer, "incidents.notice", party="authority")
    return _render(request, "notice.html", officer, incident=detail, text=text)


@router.post("/incidents/{incident_id}/notices/customers", response_class=HTMLResponse)
def incident_customer_notices(
    request: Request,
    incident_id: str,
    officer: Annotated[Officer, Depends(page(INCIDENTS_NOTIFY))],
    reason: Annotated[str, Form(max_length=500)] = "",
    csrf_token: Csrf = None,
) -> Response:
    """One draft per affected customer (GDPR Art. 34); names decrypted, each one audited."""
    from guard.records.endpoints import records_of  # noqa: PLC0415 - loads the key provider

    _check_csrf(request, officer, csrf_token)
    service = incidents_of(request)
    try:
        detail = service.get(tenant=officer.tenant, incident_id=incident_id)
    except GuardError:
        return _render(request, "not_found.html", officer, status_code=404, what="incident")
    if len(reason.strip()) < MIN_REASON:
        return _incident_page(
            request,
            officer,
            incident_id,
            error="Reason: say why the customers' names are needed",
            status_code=400,
        )
    stated = redacted_reason(request, reason, tenant=officer.tenant)
    drafts, unresolved = service.customer_notices(
        tenant=officer.tenant,
        incident_id=incident_id,
        records=records_of(request),
        hash_of=services_of(request).audit.customer_hash,
    )
    for record_id, _text in drafts:
        _audit(
            request,
            officer.signed_in,
            "incidents.notice",
            customer=record_id,
            details={"party": "customer", "reason": stated},
        )
    if not drafts:
        _audit(request, officer.signed_in, "incidents.notice", details={"party": "customer"})
    return _render(
        request,
        "customer_notices.html",
        officer,
        incident=detail,
        drafts=drafts,
        unresolved=unresolved,
    )


# ---------------------------------------------------------------------- keys


@router.get("/keys", response_class=HTMLResponse)
def keys_page(request: Request, officer: Annotated[Officer, Depends(page(AUDIT_READ))]) -> Response:
    """Key-encryption key versions and what they wrap; the audit signing key; recent exports."""
    from guard.records.repository import SqlDataKeyStore  # noqa: PLC0415

    services = services_of(request)
    by_version = SqlDataKeyStore(services.session_factory).count_by_version()
    exports = services.audit.search(
        AuditFilters(tenant=officer.tenant, action="audit.export"), limit=20
    ).events
    bundles = services.audit.search(
        AuditFilters(tenant=officer.tenant, action="audit.bundle"), limit=20
    ).events
    _viewed(request, officer, "console.keys")
    return _render(
        request,
        "keys.html",
        officer,
        by_version=sorted(by_version.items()),
        signing_key_id=services.audit.keys.signing_key_id,
        exports=sorted([*exports, *bundles], key=lambda e: e.seq, reverse=True)[:20],
    )


# ---------------------------------------------------------------------- data subject requests

#: The console's status filter of requests: a status, or every request.
_REQUEST_FILTERS = ("open", "fulfilled", "rejected", "any")
#: What each audited action on a request reads as in its timeline.
_TIMELINE_WORDS = {
    "subjects.open": "opened",
    "subjects.read": "viewed",
    "subjects.extend": "deadline extended",
    "subjects.package": "package made",
    "subjects.download": "package downloaded",
    "subjects.erase": "customer erased",
    "subjects.close": "closed",
}


@dataclass(frozen=True)
class RequestRow:
    """A request as the console lists it: its clock in words; no customer data."""

    request: SubjectRequestRead
    clock: str


def _request_row(request: SubjectRequestRead) -> RequestRow:
    return RequestRow(request, clock_words(request.time_left_seconds, overdue=request.overdue))


@router.get("/subjects", response_class=HTMLResponse)
def subjects_list(
    request: Request, officer: Annotated[Officer, Depends(page(SUBJECTS_READ))]
) -> Response:
    """Data subject requests with their clocks, soonest due first (open ones by default)."""
    status = request.query_params.get("status", "open")
    kind = request.query_params.get("kind", "")
    status = status if status in _REQUEST_FILTERS else "open"
    listed = subjects_of(request).list_requests(
        tenant=officer.tenant,
        status=None if status == "any" else status,
        kind=kind if kind in REQUEST_KINDS else None,
        limit=200,
    )
    _viewed(request, officer, "console.subjects", results=len(listed.requests))
    return _render(
        request,
        "subjects.html",
        officer,
        rows=[_request_row(item) for item in listed.requests],
        status=status,
        kind=kind,
        statuses=_REQUEST_FILTERS,
        kinds=REQUEST_KINDS,
    )


@router.get("/subjects/{request_id}", response_class=HTMLResponse)
def subject_detail(
    request: Request, request_id: str, officer: Annotated[Officer, Depends(page(SUBJECTS_READ))]
) -> Response:
    """One request: its clock, package and timeline (from the audit trail); no customer data."""
    service = subjects_of(request)
    try:
        found = service.get(tenant=officer.tenant, request_id=request_id)
        timeline = service.timeline(tenant=officer.tenant, request_id=request_id)
    except GuardError:
        _viewed(request, officer, "console.subject", results=0)
        return _render(request, "not_found.html", officer, status_code=404, what="request")
    # the customer's trail shows that an officer looked at their request
    _audit(request, officer.signed_in, "subjects.read", customer=found.record_id)
    return _render(
        request,
        "subject.html",
        officer,
        row=_request_row(found),
        timeline=[(item, _TIMELINE_WORDS.get(item.action, item.action)) for item in timeline],
    )
