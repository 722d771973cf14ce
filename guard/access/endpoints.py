"""Administration endpoints: API keys of the caller's tenant, policy reload and explanation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from guard.access.permissions import POLICY_CHECK, POLICY_RELOAD, PRINCIPAL_MANAGE
from guard.access.schemas import (
    PolicyCheck,
    PolicyReloaded,
    PrincipalCreate,
    PrincipalCreated,
    PrincipalRead,
)
from guard.api.routing import GuardRoute
from guard.api.security import Caller, requires, services_of

router = APIRouter(prefix="/v1/admin", tags=["administration"], route_class=GuardRoute)


@router.post("/principals", response_model=PrincipalCreated, status_code=status.HTTP_201_CREATED)
def create_principal(
    body: PrincipalCreate,
    request: Request,
    caller: Annotated[Caller, Depends(requires(PRINCIPAL_MANAGE))],
) -> PrincipalCreated:
    """Create an API key in the caller's tenant; the key is in this response only."""
    expires_in = timedelta(days=body.expires_in_days) if body.expires_in_days else None
    principal, key = services_of(request).api_keys.create(
        name=body.name,
        role=body.role,
        tenant=caller.principal.tenant,
        expires_in=expires_in,
        actor=caller.principal,
    )
    return PrincipalCreated(id=principal.id, role=principal.role, tenant=principal.tenant, key=key)


@router.get("/principals", response_model=list[PrincipalRead])
def list_principals(
    request: Request,
    caller: Annotated[Caller, Depends(requires(PRINCIPAL_MANAGE))],
) -> list[PrincipalRead]:
    """The caller's tenant's API keys, without the keys."""
    now = datetime.now(UTC)
    keys = services_of(request).api_keys.list(caller.principal.tenant, actor=caller.principal)
    return [
        PrincipalRead(
            id=info.id,
            name=info.name,
            role=info.role,
            tenant=info.tenant,
            status=info.status(now),
            created_at=info.created_at,
            expires_at=info.expires_at,
            revoked_at=info.revoked_at,
        )
        for info in keys
    ]


@router.delete("/principals/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_principal(
    key_id: str,
    request: Request,
    caller: Annotated[Caller, Depends(requires(PRINCIPAL_MANAGE))],
) -> Response:
    """Revoke one of the caller's tenant's API keys."""
    services_of(request).api_keys.revoke(
        key_id, tenant=caller.principal.tenant, actor=caller.principal
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/policies/reload", response_model=PolicyReloaded)
def reload_policies(
    request: Request,
    caller: Annotated[Caller, Depends(requires(POLICY_RELOAD))],
) -> PolicyReloaded:
    """Validate and apply policies/ in this process; a broken policy leaves the old one."""
    services_of(request).access.reload(principal=caller.principal)
    return PolicyReloaded(status="reloaded")


@router.get("/policies/check", response_model=PolicyCheck)
def check_policy(
    request: Request,
    caller: Annotated[Caller, Depends(requires(POLICY_CHECK))],
    role: Annotated[str, Query(max_length=32)],
    action: Annotated[str, Query(max_length=32)],
    resource: Annotated[str, Query(max_length=32)],
) -> PolicyCheck:
    """Explain whether ``role`` may ``action`` the ``resource`` in the caller's tenant."""
    tenant = caller.principal.tenant
    explanation = services_of(request).access.explain(role, tenant, action, resource)
    return PolicyCheck(
        role=role,
        tenant=tenant,
        action=action,
        resource=resource,
        allowed=explanation.allowed,
        reason=explanation.reason,
    )
