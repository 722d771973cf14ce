"""Authentication and authorization for every route, at one choke point.

Each route asks for a permission with ``Depends(requires(PERMISSION))``: the caller is
authenticated (API key or JWT bearer token), the permission is enforced by Casbin for the
caller's role and tenant, and a refusal is audited and counted before the route runs. A route
without a permission would be public; a test walks every route and fails on any such route
outside the health and metrics endpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.routing import APIRoute

from guard.access.errors import AuthenticationError, PermissionDeniedError

if TYPE_CHECKING:
    from fastapi.dependencies.models import Dependant

    from guard.access.permissions import Permission
    from guard.access.principals import Principal
    from guard.api.services import Services

API_KEY_PREFIX = "gk_"


@dataclass(frozen=True)
class Caller:
    """Who is calling, as established for this request."""

    principal: Principal
    request_id: str


def services_of(request: Request) -> Services:
    """The process-wide services the app was built with."""
    services: Services = request.app.state.services
    return services


def request_id_of(request: Request) -> str:
    """The id the request-id middleware gave this request."""
    return str(getattr(request.state, "request_id", "-"))


def _credential(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthenticationError("Authorization must be 'Bearer <API key or JWT>'")
        return value.strip()
    return request.headers.get("x-api-key")


def authenticate(request: Request, services: Services) -> Principal:
    """The principal behind the request's API key or bearer token."""
    credential = _credential(request)
    if credential is None:
        raise AuthenticationError(
            "no credentials: send 'Authorization: Bearer <API key or JWT>' or 'X-API-Key'"
        )
    if credential.startswith(API_KEY_PREFIX):
        return services.api_keys.authenticate(credential)
    if services.jwt is None:
        raise AuthenticationError("bearer tokens are not configured; use an API key")
    return services.jwt.authenticate(credential)


def requires(permission: Permission) -> Callable[[Request], Caller]:
    """A dependency that lets the request through only with ``permission``, auditing refusals."""

    def check(request: Request) -> Caller:
        services = services_of(request)
        request_id = request_id_of(request)
        action = f"{permission.object}.{permission.action}"
        try:
            principal = authenticate(request, services)
        except AuthenticationError:
            services.metrics.count_denial(str(permission), "unauthenticated")
            services.audit.record(
                action=action,
                resource=request.url.path,
                decision="deny",
                outcome="failure",
                request_id=request_id,
                details={"reason": "unauthenticated"},
            )
            raise
        decision = services.access.enforce(principal, permission)
        if not decision.allowed:
            services.metrics.count_denial(str(permission), "forbidden")
            services.audit.record(
                action=action,
                resource=request.url.path,
                decision="deny",
                outcome="failure",
                principal=principal.id,
                role=principal.role,
                tenant=principal.tenant,
                request_id=request_id,
                details={"reason": "forbidden"},
            )
            raise PermissionDeniedError(
                f"role {principal.role!r} may not {permission.action} {permission.object} "
                f"in tenant {principal.tenant!r}"
            )
        return Caller(principal=principal, request_id=request_id)

    check.permission = permission  # type: ignore[attr-defined] # read by permission_of()
    return check


def record_allowed(
    request: Request,
    caller: Caller,
    *,
    action: str,
    resource: str,
    entity_counts: Mapping[str, int] | None = None,
    details: Mapping[str, str | int | bool] | None = None,
    customer: str | None = None,
    outcome: str = "success",
) -> int:
    """Audit an allowed request by ``caller``; returns the event's sequence number."""
    principal = caller.principal
    return services_of(request).audit.record(
        action=action,
        resource=resource,
        decision="allow",
        outcome=outcome,
        principal=principal.id,
        role=principal.role,
        tenant=principal.tenant,
        request_id=caller.request_id,
        entity_counts=entity_counts,
        customer=customer,
        details=details,
    )


def redacted_reason(request: Request, reason: str, *, tenant: str) -> str:
    """A reveal's stated reason as it may enter the audit trail: PII redacted, 500 chars."""
    services = services_of(request)
    entities = services.detector.analyze(reason, tenant=tenant)
    redacted = services.redactor.redact_text(reason, entities, channel="message", tenant=tenant)
    return redacted.text[:500]


def permission_of(route: APIRoute) -> Permission | None:
    """The permission a route requires, found among its dependencies."""

    def search(dependant: Dependant) -> Permission | None:
        found: Any = getattr(dependant.call, "permission", None)
        if found is not None:
            return found  # type: ignore[no-any-return]
        for sub in dependant.dependencies:
            result = search(sub)
            if result is not None:
                return result
        return None

    return search(route.dependant)
