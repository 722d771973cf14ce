"""Incident endpoints: list, show, transition, note, tick a step, clocks, notices, register.

Compliance officers and admins only (``incidents:*``); every call is audited with the incident
as the resource. An officer sees their tenant's incidents and system-wide ones; another
tenant's incident is "not found". Rendering the notices to customers decrypts each customer's
name for that alone and is audited per customer, with the officer's stated reason.
"""

from __future__ import annotations

import io
import json
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from guard.access.permissions import (
    INCIDENTS_NOTIFY,
    INCIDENTS_READ,
    INCIDENTS_RESOLVE,
    INCIDENTS_UPDATE,
)
from guard.api.routing import GuardRoute
from guard.api.security import Caller, record_allowed, redacted_reason, requires, services_of
from guard.api.services import Services
from guard.incidents.schemas import (
    CustomerNoticeRequest,
    CustomerNotices,
    IncidentDetail,
    IncidentPage,
    NoteRequest,
    Notice,
    NotifiedRequest,
    ResolvedCustomers,
    RunbookStepState,
    Severity,
    Status,
    StepRequest,
    TimelineEntry,
    TransitionRequest,
)
from guard.incidents.service import (
    IncidentService,
    build_incident_service,
    note_redactor,
    write_register_csv,
)
from guard.records.endpoints import records_of

router = APIRouter(prefix="/v1/incidents", tags=["incidents"], route_class=GuardRoute)

IncidentId = Annotated[str, Path(max_length=36, description="The incident's id (a UUID).")]
StepId = Annotated[str, Path(max_length=64, pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]


def incidents_of(request: Request) -> IncidentService:
    """The app's IncidentService (``app.state.incidents``), built on first use."""
    state = request.app.state
    service: IncidentService | None = getattr(state, "incidents", None)
    if service is None:
        services = services_of(request)
        service = build_incident_service(
            services.settings, services.session_factory, redact_note=note_redactor(services)
        )
        state.incidents = service
    return service


def _resource(incident_id: str) -> str:
    return f"incident:{incident_id}"


def _audit(
    request: Request,
    caller: Caller,
    action: str,
    incident_id: str | None,
    *,
    customer: str | None = None,
    details: dict[str, str | int | bool] | None = None,
) -> None:
    record_allowed(
        request,
        caller,
        action=action,
        resource=_resource(incident_id) if incident_id else "incidents",
        customer=customer,
        details=details,
    )


@router.get("", response_model=IncidentPage)
def list_incidents(
    request: Request,
    caller: Annotated[Caller, Depends(requires(INCIDENTS_READ))],
    status: Status | None = None,
    severity: Severity | None = None,
    rule_id: Annotated[str | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> IncidentPage:
    """Incidents of the caller's tenant (and system-wide ones), newest first, with clocks."""
    page = incidents_of(request).list_incidents(
        tenant=caller.principal.tenant,
        status=status,
        severity=severity,
        rule_id=rule_id,
        opened_since=since,
        opened_until=until,
        cursor=cursor,
        limit=limit,
    )
    _audit(request, caller, "incidents.list", None, details={"results": len(page.incidents)})
    return page


@router.get(
    "/register",
    response_model=None,
    responses={
        200: {
            "description": "The register as JSON (`format=json`) or CSV (`format=csv`).",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
def breach_register(
    request: Request,
    caller: Annotated[Caller, Depends(requires(INCIDENTS_READ))],
    format: Literal["json", "csv"] = "json",  # noqa: A002 - the query parameter's name
) -> Response:
    """The breach register (GDPR Art. 33(5)): every incident, its facts, effects and remedy."""
    entries = incidents_of(request).register(tenant=caller.principal.tenant)
    _audit(
        request,
        caller,
        "incidents.register",
        None,
        details={"results": len(entries), "format": format},
    )
    if format == "csv":
        out = io.StringIO()
        write_register_csv([entry.as_dict() for entry in entries], out)
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="breach-register.csv"'},
        )
    body = json.dumps({"incidents": [entry.as_dict() for entry in entries]})
    return Response(body, media_type="application/json")


@router.get("/{incident_id}", response_model=IncidentDetail, responses={404: {"description": "-"}})
def get_incident(
    request: Request,
    caller: Annotated[Caller, Depends(requires(INCIDENTS_READ))],
    incident_id: IncidentId,
) -> IncidentDetail:
    """An incident: evidence, affected-customer count, deadlines, checklist, timeline."""
    detail = incidents_of(request).get(tenant=caller.principal.tenant, incident_id=incident_id)
    _audit(request, caller, "incidents.read", incident_id)
    return detail


@router.post(
    "/{incident_id}/transitions",
    response_model=IncidentDetail,
    responses={404: {"description": "-"}, 409: {"description": "-"}},
)
def transition_incident(
    request: Request,
    caller: Annotated[Caller, Depends(requires(INCIDENTS_UPDATE))],
    incident_id: IncidentId,
    body: TransitionRequest,
) -> IncidentDetail:
    """Move the incident forward; any other move is 409 and changes nothing."""
    service = incidents_of(request)
    detail = service.transition(
        tenant=caller.principal.tenant,
        incident_id=incident_id,
        status=body.status,
        actor=caller.principal.id,
        note=body.note,
    )
    _audit(request, caller, "incidents.transition", incident_id, details={"to": body.status})
    return detail


@router.post(
    "/{incident_id}/notes",
    response_model=TimelineEntry,
    status_code=201,
    responses={404: {"description": "-"}},
)
def add_note(
    request: Request,
    caller: Annotated[Caller, Depends(requires(INCIDENTS_UPDATE))],
    incident_id: IncidentId,
    body: NoteRequest,
) -> TimelineEntry:
    """Add a note to the timeline (personal data in it is redacted before it is stored)."""
    entry = incidents_of(request).add_note(
        tenant=caller.principal.tenant,
        incident_id=incident_id,
        note=body.note,
        actor=caller.principal.id,
    )
    _audit(request, caller, "incidents.note", incident_id)
    return entry


@router.put(
    "/{incident_id}/steps/{step_id}",
    response_model=RunbookStepState,
    responses={404: {"description": "-"}},
)
def tick_step(
    request: Request,
    caller: Annotated[Caller, Depends(requires(INCIDENTS_UPDATE))],
    incident_id: IncidentId,
    step_id: StepId,
    body: StepRequest,
) -> RunbookStepState:
    """Tick (``done: true``) or untick a step of the incident's runbook."""
    state = incidents_of(request).tick(
        tenant=caller.principal.tenant,
        incident_id=incident_id,
        step_id=step_id,
        actor=caller.principal.id,
        done=body.done,
    )
    _audit(
        request, caller, "incidents.step", incident_id, details={"step": step_id, "done": body.done}
    )
    return state


@router.post(
    "/{incident_id}/notified", response_model=IncidentDetail, responses={404: {"description": "-"}}
)
def mark_notified(
    request: Request,
    caller: Annotated[Caller, Depends(requires(INCIDENTS_UPDATE))],
    incident_id: IncidentId,
    body: NotifiedRequest,
) -> IncidentDetail:
    """Record that the authority or the customers were notified: that clock stops."""
    detail = incidents_of(request).mark_notified(
        tenant=caller.principal.tenant,
        incident_id=incident_id,
        party=body.party,
        actor=caller.principal.id,
    )
    _audit(request, caller, "incidents.notified", incident_id, details={"party": body.party})
    return detail


@router.get(
    "/{incident_id}/notices/authority", response_model=Notice, responses={404: {"description": "-"}}
)
def authority_notice(
    request: Request,
    caller: Annotated[Caller, Depends(requires(INCIDENTS_READ))],
    incident_id: IncidentId,
) -> Notice:
    """The draft notification to the supervisory authority (GDPR Art. 33(3))."""
    text = incidents_of(request).authority_notice(
        tenant=caller.principal.tenant, incident_id=incident_id
    )
    _audit(request, caller, "incidents.notice", incident_id, details={"party": "authority"})
    return Notice(party="authority", text=text)


@router.post(
    "/{incident_id}/customers/resolve",
    response_model=ResolvedCustomers,
    responses={404: {"description": "-"}},
)
def resolve_customers(
    request: Request,
    caller: Annotated[Caller, Depends(requires(INCIDENTS_RESOLVE))],
    incident_id: IncidentId,
) -> ResolvedCustomers:
    """The affected customers as record ids of the caller's tenant (audited with the count)."""
    service = incidents_of(request)
    tenant = caller.principal.tenant
    record_ids, unresolved = service.resolve_customers(
        tenant=tenant,
        incident_id=incident_id,
        records=records_of(request),
        hash_of=services_of(request).audit.customer_hash,
    )
    _audit(
        request,
        caller,
        "incidents.resolve",
        incident_id,
        details={"results": len(record_ids), "unresolved": unresolved},
    )
    return ResolvedCustomers(record_ids=record_ids, unresolved=unresolved)


@router.post(
    "/{incident_id}/notices/customers",
    response_model=CustomerNotices,
    responses={404: {"description": "-"}},
)
def customer_notices(
    request: Request,
    caller: Annotated[Caller, Depends(requires(INCIDENTS_NOTIFY))],
    incident_id: IncidentId,
    body: CustomerNoticeRequest,
) -> CustomerNotices:
    """Per-customer notices (GDPR Art. 34), each addressed by name; each one is audited."""
    services: Services = services_of(request)
    service = incidents_of(request)
    tenant = caller.principal.tenant
    reason = redacted_reason(request, body.reason, tenant=tenant)
    drafts, unresolved = service.customer_notices(
        tenant=tenant,
        incident_id=incident_id,
        records=records_of(request),
        hash_of=services.audit.customer_hash,
        record_ids=body.record_ids,
    )
    for record_id, _text in drafts:
        _audit(
            request,
            caller,
            "incidents.notice",
            incident_id,
            customer=record_id,
            details={"party": "customer", "reason": reason},
        )
    if not drafts:
        _audit(request, caller, "incidents.notice", incident_id, details={"party": "customer"})
    return CustomerNotices(
        notices=[Notice(party="customers", record_id=rid, text=text) for rid, text in drafts],
        unresolved=unresolved,
    )
