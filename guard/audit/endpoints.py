"""Audit review endpoints: search the caller's tenant's events, verify the chain. Both audited."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from guard.access.permissions import AUDIT_READ, AUDIT_VERIFY
from guard.api.routing import GuardRoute
from guard.api.security import Caller, record_allowed, requires, services_of
from guard.audit.schemas import (
    MAX_SEQ,
    AuditFilters,
    AuditPage,
    Decision,
    Outcome,
    VerifyReport,
)

router = APIRouter(prefix="/v1/audit", tags=["audit"], route_class=GuardRoute)
#: Audited resources: the route templates (never ``request.url.path``, which the client writes).
EVENTS_RESOURCE = "/v1/audit/events"
VERIFY_RESOURCE = "/v1/audit/verify"


@router.get("/events", response_model=AuditPage)
def search_events(
    request: Request,
    caller: Annotated[Caller, Depends(requires(AUDIT_READ))],
    since: datetime | None = None,
    until: datetime | None = None,
    principal: str | None = None,
    role: str | None = None,
    action: str | None = None,
    decision: Decision | None = None,
    outcome: Outcome | None = None,
    customer: str | None = None,
    request_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
) -> AuditPage:
    """Events of the caller's tenant matching the filters, oldest first, by seq cursor."""
    audit = services_of(request).audit
    filters = AuditFilters(
        since=since,
        until=until,
        principal=principal,
        role=role,
        tenant=caller.principal.tenant,
        action=action,
        decision=decision,
        outcome=outcome,
        request_id=request_id,
        customer=customer,
    )
    page = audit.search(filters, limit=limit, cursor=cursor)
    record_allowed(
        request,
        caller,
        action="audit.search",
        resource=EVENTS_RESOURCE,
        outcome="success",
        customer=customer,
        details={"results": len(page.events)},
    )
    return page


@router.get("/verify", response_model=VerifyReport)
def verify_trail(
    request: Request, caller: Annotated[Caller, Depends(requires(AUDIT_VERIFY))]
) -> VerifyReport:
    """Verify the whole chain and its signed checkpoints."""
    audit = services_of(request).audit
    report = audit.verify()
    record_allowed(
        request,
        caller,
        action="audit.verify",
        resource=VERIFY_RESOURCE,
        outcome="success" if report.ok else "failure",
        details={
            "events": report.events_checked,
            "ok": report.ok,
            "from_seq": report.verified_from_seq or 1,
        },
    )
    return report
