"""Retention over HTTP (``/v1/retention``): the schedule, runs and legal holds.

Compliance officers and admins only: ``retention:read`` to see the schedule, runs and holds,
``retention:hold`` to place and release holds. Everything is the caller's tenant's: a hold's
target (a customer record, or an incident of the tenant or a system-wide one) and a hold of
another tenant are "not found"; a run shows only the caller's tenant's counts and the audit
trail's. Every call is audited; a hold's stated reason is stored redacted (personal data in it,
and the held customer's own name, email and phone) and never enters the trail.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request

from guard.access.permissions import RETENTION_HOLD, RETENTION_READ
from guard.api.routing import GuardRoute
from guard.api.security import Caller, record_allowed, redacted_reason, requires, services_of
from guard.errors import GuardError
from guard.records.endpoints import records_of
from guard.subjects.holds import SCOPE_CUSTOMER, HoldInfo, HoldService
from guard.subjects.policy import RETENTION_FILENAME, RETENTION_KINDS, load_retention_policy
from guard.subjects.retention import period_text, recent_runs, run_counts
from guard.subjects.retention_schemas import (
    HoldCreate,
    HoldList,
    HoldRead,
    PeriodRead,
    RunList,
    RunRead,
    ScheduleRead,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from guard.subjects.policy import RetentionPolicy

router = APIRouter(prefix="/v1/retention", tags=["retention"], route_class=GuardRoute)

T = TypeVar("T")
RESOURCE = "retention"
HoldId = Annotated[str, Path(max_length=36, description="The hold's id (a UUID).")]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such target, or hold, in the caller's tenant."}
}


def retention_policy_of(request: Request) -> RetentionPolicy:
    """The retention policy (``app.state.retention_policy``), loaded on first use."""
    state = request.app.state
    policy: RetentionPolicy | None = getattr(state, "retention_policy", None)
    if policy is None:
        settings = services_of(request).settings
        policy = load_retention_policy(settings.policies_dir / RETENTION_FILENAME)
        state.retention_policy = policy
    return policy


def holds_of(request: Request) -> HoldService:
    """The app's HoldService (``app.state.holds``), built on first use."""
    state = request.app.state
    service: HoldService | None = getattr(state, "holds", None)
    if service is None:
        service = HoldService(services_of(request).session_factory, records_of(request))
        state.holds = service
    return service


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _customer(scope: str, target: str) -> str | None:
    """The audited customer of a hold: its record id (hashed by the trail), if it can be one.

    A target that is no UUID names no record; it is not handed to the trail at all.
    """
    return target if scope == SCOPE_CUSTOMER and _is_uuid(target) else None


def _resource(scope: str, target: str) -> str:
    """An incident hold's resource is the incident (as incidents' own events name it)."""
    return f"incident:{target}" if scope != SCOPE_CUSTOMER and _is_uuid(target) else RESOURCE


def _audited(
    request: Request,
    caller: Caller,
    action: str,
    run: Callable[[], T],
    *,
    customer: str | None = None,
    resource: str = RESOURCE,
) -> T:
    """Run ``run``; a refusal (not found, released, bad input) is audited, then raised."""
    try:
        return run()
    except GuardError as exc:
        record_allowed(
            request,
            caller,
            action=action,
            resource=resource,
            customer=customer,
            outcome="failure",
            details={"reason": exc.type_slug},
        )
        raise


def _read(hold: HoldInfo) -> HoldRead:
    return HoldRead(
        id=hold.id,
        scope="customer" if hold.scope == SCOPE_CUSTOMER else "incident",
        target=hold.target,
        reason=hold.reason,
        placed_by=hold.placed_by,
        placed_at=hold.placed_at,
        released_by=hold.released_by,
        released_at=hold.released_at,
        active=hold.active,
    )


@router.get("", response_model=ScheduleRead)
def schedule(
    request: Request, caller: Annotated[Caller, Depends(requires(RETENTION_READ))]
) -> ScheduleRead:
    """How long each kind of data is kept in the caller's tenant, and how often it is applied."""
    policy = retention_policy_of(request)
    tenant = caller.principal.tenant
    periods = []
    for kind in RETENTION_KINDS:
        period = policy.period(tenant, kind)
        periods.append(
            PeriodRead(
                kind=kind,
                amount=None if period is None else period.amount,
                unit="" if period is None else period.unit,
                text=period_text(period),
                zero=period is not None and period.amount == 0,
            )
        )
    record_allowed(request, caller, action="retention.schedule", resource=RESOURCE)
    return ScheduleRead(
        tenant=tenant,
        own_entry=tenant in policy.named_tenants(),
        policy_sha256=policy.sha256,
        periods=periods,
        interval_seconds=services_of(request).settings.retention_interval_seconds,
    )


@router.get("/runs", response_model=RunList)
def list_runs(
    request: Request,
    caller: Annotated[Caller, Depends(requires(RETENTION_READ))],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> RunList:
    """Recent retention runs, newest first, with the caller's tenant's counts."""
    tenant = caller.principal.tenant
    runs = []
    for run in recent_runs(services_of(request).session_factory, limit=limit):
        removed, held = run_counts(run, tenant=tenant)
        runs.append(
            RunRead(
                id=run.id,
                status=run.status,
                started_at=run.started_at,
                finished_at=run.finished_at,
                started_by=run.started_by,
                as_of=run.as_of,
                policy_sha256=run.policy_sha256,
                removed=removed,
                held=held,
            )
        )
    record_allowed(
        request, caller, action="retention.runs", resource=RESOURCE, details={"results": len(runs)}
    )
    return RunList(runs=runs)


@router.get("/holds", response_model=HoldList)
def list_holds(
    request: Request,
    caller: Annotated[Caller, Depends(requires(RETENTION_READ))],
    include_released: bool = False,
) -> HoldList:
    """The caller's tenant's legal holds, newest first (active ones unless asked)."""
    holds = holds_of(request).list_holds(
        tenant=caller.principal.tenant, include_released=include_released
    )
    record_allowed(
        request,
        caller,
        action="retention.holds",
        resource=RESOURCE,
        details={"results": len(holds)},
    )
    return HoldList(holds=[_read(hold) for hold in holds])


@router.post(
    "/holds",
    response_model=HoldRead,
    status_code=201,
    responses=_NOT_FOUND,
)
def place_hold(
    request: Request,
    caller: Annotated[Caller, Depends(requires(RETENTION_HOLD))],
    body: HoldCreate,
) -> HoldRead:
    """Place a legal hold on a customer or an incident: retention leaves what it covers alone."""
    tenant = caller.principal.tenant

    def redact(text: str, known: Mapping[str, str]) -> str:
        return redacted_reason(request, text, tenant=tenant, known=known)

    customer = _customer(body.scope, body.target)
    resource = _resource(body.scope, body.target)
    hold = _audited(
        request,
        caller,
        "retention.hold",
        lambda: holds_of(request).place(
            tenant=tenant,
            scope=body.scope,
            target=body.target,
            reason=body.reason,
            placed_by=caller.principal.id,
            redact=redact,
        ),
        customer=customer,
        resource=resource,
    )
    record_allowed(
        request,
        caller,
        action="retention.hold",
        resource=resource,
        customer=customer,
        details={"hold_id": hold.id, "scope": hold.scope},
    )
    return _read(hold)


@router.post(
    "/holds/{hold_id}/release",
    response_model=HoldRead,
    responses={
        **_NOT_FOUND,
        409: {"description": "The hold was released already."},
    },
)
def release_hold(
    request: Request,
    caller: Annotated[Caller, Depends(requires(RETENTION_HOLD))],
    hold_id: HoldId,
) -> HoldRead:
    """Release a legal hold: the next retention run may remove what it covered."""
    hold = _audited(
        request,
        caller,
        "retention.release",
        lambda: holds_of(request).release(
            tenant=caller.principal.tenant, hold_id=hold_id, released_by=caller.principal.id
        ),
    )
    record_allowed(
        request,
        caller,
        action="retention.release",
        resource=_resource(hold.scope, hold.target),
        customer=_customer(hold.scope, hold.target),
        details={"hold_id": hold.id, "scope": hold.scope},
    )
    return _read(hold)
