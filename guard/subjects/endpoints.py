"""Data subject requests over HTTP (``/v1/subjects``): open, list, show, extend, package, erase.

Compliance officers and admins only (``subjects:*``). The tenant is always the caller's:
another tenant's request is "not found", and a customer is looked up only through the caller's
tenant's blind indexes. The actions are audited by :class:`SubjectService` (the same events
as from the command line); the reads here. A package's passphrase is in one response only,
marked ``Cache-Control: no-store``, and nowhere else.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from guard.access.permissions import (
    SUBJECTS_ERASE,
    SUBJECTS_OPEN,
    SUBJECTS_PACKAGE,
    SUBJECTS_READ,
)
from guard.api.routing import GuardRoute
from guard.api.security import Caller, requires, services_of
from guard.records.endpoints import records_of
from guard.redaction.reasons import reason_redactor
from guard.subjects.schemas import (
    MAX_REASON,
    CloseRequest,
    EraseRequest,
    ExtendRequest,
    Kind,
    PackageCreated,
    PackageFileRead,
    Status,
    SubjectRequestCreate,
    SubjectRequestPage,
    SubjectRequestRead,
)
from guard.subjects.service import MAX_PAGE, Actor, SubjectService

router = APIRouter(prefix="/v1/subjects", tags=["subjects"], route_class=GuardRoute)

RequestId = Annotated[str, Path(max_length=36, description="The request's id (a UUID).")]
NO_STORE = {"Cache-Control": "no-store"}
DELIVERY_NOTICE = (
    "Give this passphrase to the customer by another channel than the archive (read it out on "
    "a call you placed to them, or send it by post). It is shown once: guard does not keep it."
)
_NOT_FOUND = {"description": "No request with this id in the caller's tenant."}
_CLOSED = {"description": "The request is closed, or its kind or state refuses the action."}


def subjects_of(request: Request) -> SubjectService:
    """The app's SubjectService (``app.state.subjects``), built on first use."""
    state = request.app.state
    service: SubjectService | None = getattr(state, "subjects", None)
    if service is None:
        services = services_of(request)
        service = SubjectService(
            settings=services.settings,
            session_factory=services.session_factory,
            records=records_of(request),
            audit=services.audit,
            redact=reason_redactor(services.analysis, services.redactor, limit=MAX_REASON),
        )
        state.subjects = service
    return service


def actor_of(caller: Caller) -> Actor:
    """The service's view of an API caller."""
    principal = caller.principal
    return Actor(
        principal=principal.id,
        tenant=principal.tenant,
        role=principal.role,
        request_id=caller.request_id,
    )


@router.post(
    "/requests",
    response_model=SubjectRequestRead,
    status_code=status.HTTP_201_CREATED,
    responses={
        404: {"description": "No customer of the caller's tenant matches the identifier."},
        409: {"description": "Several customers share the identifier: give the record id."},
        410: {"description": "The customer's record was erased."},
    },
)
def open_request(
    body: SubjectRequestCreate,
    request: Request,
    caller: Annotated[Caller, Depends(requires(SUBJECTS_OPEN))],
) -> SubjectRequestRead:
    """Register an access, portability or erasure request; the deadline is one month."""
    return subjects_of(request).open(
        actor=actor_of(caller),
        kind=body.kind,
        identity_check=body.identity_check,
        record_id=body.record_id,
        email=body.email,
        phone=body.phone,
        account_id=body.account_id,
        received_at=body.received_at,
    )


@router.get("/requests", response_model=SubjectRequestPage)
def list_requests(
    request: Request,
    caller: Annotated[Caller, Depends(requires(SUBJECTS_READ))],
    status: Status | None = None,
    kind: Kind | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> SubjectRequestPage:
    """The tenant's requests, soonest due first, with their clocks."""
    service = subjects_of(request)
    page = service.list_requests(
        tenant=caller.principal.tenant, status=status, kind=kind, cursor=cursor, limit=limit
    )
    service.audit_view(actor_of(caller), "subjects.list", results=len(page.requests))
    return page


@router.get(
    "/requests/{request_id}", response_model=SubjectRequestRead, responses={404: _NOT_FOUND}
)
def get_request(
    request_id: RequestId,
    request: Request,
    caller: Annotated[Caller, Depends(requires(SUBJECTS_READ))],
) -> SubjectRequestRead:
    """One request: its clock, outcome and package (never the package's content)."""
    service = subjects_of(request)
    found = service.get(tenant=caller.principal.tenant, request_id=request_id)
    service.audit_view(actor_of(caller), "subjects.read", found)
    return found


@router.post(
    "/requests/{request_id}/extend",
    response_model=SubjectRequestRead,
    responses={404: _NOT_FOUND, 409: _CLOSED},
)
def extend_request(
    request_id: RequestId,
    body: ExtendRequest,
    request: Request,
    caller: Annotated[Caller, Depends(requires(SUBJECTS_OPEN))],
) -> SubjectRequestRead:
    """Extend the deadline by up to two further months, once, within the first month."""
    return subjects_of(request).extend(
        actor=actor_of(caller), request_id=request_id, reason=body.reason, months=body.months
    )


@router.post(
    "/requests/{request_id}/package",
    response_model=PackageCreated,
    status_code=status.HTTP_201_CREATED,
    responses={404: _NOT_FOUND, 409: _CLOSED, 410: {"description": "The record was erased."}},
)
def make_package(
    request_id: RequestId,
    request: Request,
    response: Response,
    caller: Annotated[Caller, Depends(requires(SUBJECTS_PACKAGE))],
) -> PackageCreated:
    """Build the encrypted package of an access or portability request; the passphrase, once."""
    made = subjects_of(request).package(actor=actor_of(caller), request_id=request_id)
    response.headers.update(NO_STORE)
    built = made.built
    return PackageCreated(
        request=made.request,
        package=made.info,
        files=[PackageFileRead(name=f.name, sha256=f.sha256, size=f.size) for f in built.files],
        audit_events=built.audit_events,
        incidents=built.incidents,
        passphrase=built.passphrase,
        notice=DELIVERY_NOTICE,
    )


@router.get(
    "/requests/{request_id}/package",
    response_class=Response,
    responses={
        200: {
            "description": "The encrypted archive (AES-256 ZIP).",
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
        },
        404: {"description": "No such request, or it has no package."},
        410: {"description": "The package has expired: make a new one."},
    },
)
def download_package(
    request_id: RequestId,
    request: Request,
    caller: Annotated[Caller, Depends(requires(SUBJECTS_PACKAGE))],
) -> Response:
    """The request's encrypted package, for delivery to the customer (audited)."""
    stored = subjects_of(request).download(actor=actor_of(caller), request_id=request_id)
    return Response(
        stored.archive,
        media_type="application/zip",
        headers={
            **NO_STORE,
            "Content-Disposition": f'attachment; filename="{stored.filename}"',
            "Guard-Package-SHA256": stored.sha256,
        },
    )


@router.post(
    "/requests/{request_id}/erase",
    response_model=SubjectRequestRead,
    responses={404: _NOT_FOUND, 409: {"description": "Closed, not an erasure, or on hold."}},
)
def erase_customer(
    request_id: RequestId,
    body: EraseRequest,
    request: Request,
    caller: Annotated[Caller, Depends(requires(SUBJECTS_ERASE))],
) -> SubjectRequestRead:
    """Crypto-shred the customer of an erasure request, unless a legal hold covers them."""
    del body  # validated: confirm is true
    return subjects_of(request).erase(actor=actor_of(caller), request_id=request_id)


@router.post(
    "/requests/{request_id}/close",
    response_model=SubjectRequestRead,
    responses={404: _NOT_FOUND, 409: _CLOSED},
)
def close_request(
    request_id: RequestId,
    body: CloseRequest,
    request: Request,
    caller: Annotated[Caller, Depends(requires(SUBJECTS_OPEN))],
) -> SubjectRequestRead:
    """Close a request as fulfilled or rejected, with the reason (redacted)."""
    return subjects_of(request).close(
        actor=actor_of(caller), request_id=request_id, outcome=body.outcome, reason=body.reason
    )
