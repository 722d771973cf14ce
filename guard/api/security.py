"""Authentication and authorization for every route, at one choke point.

Each route asks for a permission with ``Depends(requires(PERMISSION))``: the caller is
authenticated (API key or JWT bearer token), the permission is enforced by Casbin for the
caller's role and tenant, and a refusal is audited and counted before the route runs. A route
without a permission would be public; a test walks every route and fails on any such route
outside the health and metrics endpoints.

Nothing the client chose enters a refusal's audit event raw: the resource is the route template
(``/v1/records/{record_id}``) and the path parameters are a keyed hash (``path_hash``). Failed
authentication is limited per client address and key prefix (429 with ``Retry-After``), and
repeated refusals of one client are counted into one event per window (see
:mod:`guard.access.throttle`); the audit middleware writes the event of any request that ends
without one (see :mod:`guard.api.audit_middleware`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.routing import APIRoute

from guard.access.errors import (
    AuthenticationError,
    AuthenticationThrottledError,
    PermissionDeniedError,
)
from guard.redaction.reasons import redact_reason

if TYPE_CHECKING:
    from fastapi.dependencies.models import Dependant
    from starlette.types import Scope

    from guard.access.permissions import Permission
    from guard.access.principals import Principal
    from guard.access.throttle import RefusalThrottle
    from guard.api.services import Services
    from guard.audit.context import RequestAudit
    from guard.audit.service import AuditTrail

API_KEY_PREFIX = "gk_"
#: Keys of ``scope["state"]`` set by the audit middleware for the rest of the request.
AUDIT_STATE_KEY = "audit"
THROTTLE_STATE_KEY = "refusal_throttle"
_API_KEY_WITH_PREFIX = re.compile(r"gk_([A-Za-z0-9_-]{8})_")


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


def request_audit_of(scope: Scope) -> RequestAudit | None:
    """The audit state the audit middleware opened for this request (None without it)."""
    state: Mapping[str, Any] = scope.get("state") or {}
    found: RequestAudit | None = state.get(AUDIT_STATE_KEY)
    return found


def _throttle_of(scope: Scope) -> RefusalThrottle | None:
    state: Mapping[str, Any] = scope.get("state") or {}
    found: RefusalThrottle | None = state.get(THROTTLE_STATE_KEY)
    return found


def client_address_of(scope: Scope) -> str:
    """The client's address as the server saw it (behind a proxy: as the server was told)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def credential_prefix(request: Request) -> str:
    """What the failure limit counts per: an API key's public prefix, ``jwt``, or ``none``.

    Never the secret part: the prefix is the public half of a key, used to find its row.
    """
    header = request.headers.get("authorization")
    credential = header.partition(" ")[2].strip() if header else request.headers.get("x-api-key")
    if not credential:
        return "none"
    if credential.startswith(API_KEY_PREFIX):
        match = _API_KEY_WITH_PREFIX.match(credential)
        return f"key:{match.group(1)}" if match else "key:malformed"
    return "jwt"


def audit_resource(scope: Scope, audit: AuditTrail) -> tuple[str, dict[str, str | int | bool]]:
    """The route template as the audited resource, and the keyed hash of the path parameters.

    Never the raw path: it may hold an email address, a record id, 10 KB or a NUL byte.
    """
    template = getattr(scope.get("route"), "path", None)
    if not isinstance(template, str) or not template:
        raw = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape")
        return "unmatched", {"path_hash": audit.raw_path_hash(raw)}
    params: Mapping[str, object] = scope.get("path_params") or {}
    return template, ({"path_hash": audit.path_params_hash(params)} if params else {})


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
    return authenticate_credential(credential, services)


def authenticate_credential(credential: str, services: Services) -> Principal:
    """The principal behind an API key or a JWT (the console's sign-in form gives one)."""
    if credential.startswith(API_KEY_PREFIX):
        return services.api_keys.authenticate(credential)
    if services.jwt is None:
        raise AuthenticationError("bearer tokens are not configured; use an API key")
    return services.jwt.authenticate(credential)


def identify(request: Request, services: Services) -> Principal | None:
    """The principal behind the request's credentials, or None; never raises for bad ones."""
    try:
        return authenticate(request, services)
    except AuthenticationError:
        return None


def _authenticated(request: Request, services: Services, permission: Permission) -> Principal:
    """The caller's principal; a failure is limited, counted and audited (or aggregated)."""
    state = request_audit_of(request.scope)
    throttle = _throttle_of(request.scope)
    client, prefix = client_address_of(request.scope), credential_prefix(request)
    retry_after = None if throttle is None else throttle.check(client, prefix)
    if retry_after is not None:
        services.metrics.count_denial(str(permission), "throttled")
        if state is not None:
            state.retry_after = retry_after
            state.mark_audited()  # counted in the client's aggregate event
        raise AuthenticationThrottledError(
            f"too many failed authentications from this client; retry after {retry_after} s",
            retry_after=retry_after,
        )
    try:
        principal = authenticate(request, services)
    except AuthenticationError as exc:
        services.metrics.count_denial(str(permission), "unauthenticated")
        if throttle is None or throttle.refused(client, status=401, prefix=prefix):
            resource, path_details = audit_resource(request.scope, services.audit)
            services.audit.record(
                action=f"{permission.object}.{permission.action}",
                resource=resource,
                decision="deny",
                outcome="failure",
                request_id=request_id_of(request),
                details={
                    "reason": exc.audit_reason,
                    "status": 401,
                    # the public half of the key (or jwt / none): what incident rules group by
                    "key_prefix": prefix,
                    **path_details,
                },
            )
        elif state is not None:
            state.mark_audited()  # counted in the client's aggregate event
        raise
    if state is not None:
        state.principal, state.role, state.tenant = principal.id, principal.role, principal.tenant
    return principal


def requires(permission: Permission) -> Callable[[Request], Caller]:
    """A dependency that lets the request through only with ``permission``, auditing refusals."""

    def check(request: Request) -> Caller:
        services = services_of(request)
        request_id = request_id_of(request)
        principal = _authenticated(request, services, permission)
        decision = services.access.enforce(principal, permission)
        state = request_audit_of(request.scope)
        if state is not None:
            state.authorised = decision.allowed
        if not decision.allowed:
            services.metrics.count_denial(str(permission), "forbidden")
            resource, path_details = audit_resource(request.scope, services.audit)
            services.audit.record(
                action=f"{permission.object}.{permission.action}",
                resource=resource,
                decision="deny",
                outcome="failure",
                principal=principal.id,
                role=principal.role,
                tenant=principal.tenant,
                request_id=request_id,
                details={"reason": "forbidden", "status": 403, **path_details},
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


def redacted_reason(
    request: Request, reason: str, *, tenant: str, known: Mapping[str, str] | None = None
) -> str:
    """A reveal's stated reason as it may enter the audit trail: PII redacted, 500 chars.

    ``known``: values the caller knows are personal data (the revealed record's name, email,
    phone) and the entity type of each. They are replaced whether or not detection finds them:
    a reason that names the customer ("Ms Vandersloot called") is the common case, and a rare
    name is exactly what a statistical model may miss.
    """
    services = services_of(request)
    return redact_reason(services.analysis, services.redactor, reason, tenant=tenant, known=known)


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
