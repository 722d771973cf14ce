"""Records endpoints: create, read (role view), update, search, list, erase, audited reveal.

The tenant is always the caller's: a record of another tenant is "not found". Every route is
authorized by ``requires`` and audited with the record id as ``customer`` (stored hashed).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request, status

from guard.access.permissions import (
    RECORDS_CREATE,
    RECORDS_ERASE,
    RECORDS_LIST,
    RECORDS_READ,
    RECORDS_REVEAL,
    RECORDS_SEARCH,
    RECORDS_UPDATE,
)
from guard.api.routing import GuardRoute
from guard.api.security import Caller, record_allowed, redacted_reason, requires, services_of
from guard.api.services import Services
from guard.crypto.errors import IntegrityError
from guard.errors import GuardError
from guard.records.errors import RecordErasedError, RecordNotFoundError
from guard.records.schemas import (
    RecordCreate,
    RecordErased,
    RecordPage,
    RecordRead,
    RecordReveal,
    RecordRevealRequest,
    RecordSearchRequest,
    RecordSearchResult,
    RecordSummary,
    RecordUpdate,
)
from guard.records.service import MAX_PAGE, DecryptedRecord, RecordService

router = APIRouter(prefix="/v1/records", tags=["records"], route_class=GuardRoute)

T = TypeVar("T")
RESOURCE = "records"


def build_record_service(services: Services) -> RecordService:
    """A RecordService over the app's services, with the configured key provider."""
    from guard.crypto.blind_index import BlindIndexer  # noqa: PLC0415 - key loading, once
    from guard.crypto.envelope import EnvelopeCipher  # noqa: PLC0415
    from guard.crypto.providers import load_key_provider  # noqa: PLC0415

    settings = services.settings
    return RecordService(
        settings,
        services.session_factory,
        EnvelopeCipher(load_key_provider(settings)),
        BlindIndexer.from_settings(settings),
        services.analysis,
        services.redactor,
    )


def records_of(request: Request) -> RecordService:
    """The app's RecordService (``app.state.records``), built on first use if not at start-up."""
    state = request.app.state
    service: RecordService | None = getattr(state, "records", None)
    if service is None:
        service = build_record_service(services_of(request))
        state.records = service
    return service


def _audited(
    request: Request, caller: Caller, action: str, record_id: str | None, run: Callable[[], T]
) -> T:
    """Run ``run``; a failure is audited with its reason, then raised.

    Not found, erased, failed authentication, bad input: probing for record ids leaves a trace.
    """
    try:
        return run()
    except GuardError as exc:
        reason = "integrity" if isinstance(exc, IntegrityError) else exc.type_slug
        record_allowed(
            request,
            caller,
            action=action,
            resource=RESOURCE,
            customer=record_id,
            outcome="failure",
            details={"reason": reason},
        )
        # the service names the id it was given; the answer never echoes the URL's input
        if isinstance(exc, RecordNotFoundError):
            raise RecordNotFoundError("no record with this id in this tenant") from None
        if isinstance(exc, RecordErasedError):
            raise RecordErasedError("this record was erased; only its tombstone remains") from None
        raise


def _existing_id(record_id: str) -> str:
    """``record_id`` if it can name a record (ids are UUIDs), else "not found".

    Called inside ``_audited``: the attempt is audited like any other miss, and an id no
    record can have (e.g. one with a NUL byte, which PostgreSQL refuses) never reaches a query.
    """
    try:
        uuid.UUID(record_id)
    except ValueError:
        raise RecordNotFoundError("no record with this id in this tenant") from None
    return record_id


def _summary_fields(record: DecryptedRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "status": record.status,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def _shown(service: RecordService, caller: Caller) -> frozenset[str]:
    """The stored fields the caller's role sees: the only ones decrypted for it."""
    return service.views.stored_fields(caller.principal.role)


def _view(service: RecordService, record: DecryptedRecord, caller: Caller) -> RecordRead:
    role = caller.principal.role
    fields = service.views.apply(
        role, record.fields, tenant=record.tenant, keys=service.redaction_keys
    )
    return RecordRead(
        **_summary_fields(record), view=role, fields=fields, request_id=caller.request_id
    )


@router.post("", response_model=RecordRead, status_code=status.HTTP_201_CREATED)
def create_record(
    body: RecordCreate,
    request: Request,
    caller: Annotated[Caller, Depends(requires(RECORDS_CREATE))],
) -> RecordRead:
    """Store a new record, encrypted; notes are kept in full and redacted."""
    service = records_of(request)
    record = service.create(tenant=caller.principal.tenant, data=body, only=_shown(service, caller))
    record_allowed(
        request,
        caller,
        action="records.create",
        resource=RESOURCE,
        customer=record.id,
        entity_counts=record.entity_counts,
        details={"fields": len(body.model_fields_set)},
    )
    return _view(service, record, caller)


@router.post("/search", response_model=RecordSearchResult)
def search_records(
    body: RecordSearchRequest,
    request: Request,
    caller: Annotated[Caller, Depends(requires(RECORDS_SEARCH))],
) -> RecordSearchResult:
    """Records matching exactly one of email, phone or account id, by blind index.

    A POST body, not query parameters: identifiers in URLs end up in proxy and access logs.
    """
    service = records_of(request)
    email, phone, account_id = body.email, body.phone, body.account_id
    by = "email" if email is not None else "phone" if phone is not None else "account_id"
    records = _audited(
        request,
        caller,
        "records.search",
        None,
        lambda: service.search(
            tenant=caller.principal.tenant,
            email=email,
            phone=phone,
            account_id=account_id,
            only=_shown(service, caller),
        ),
    )
    record_allowed(
        request,
        caller,
        action="records.search",
        resource=RESOURCE,
        details={"by": by, "matches": len(records)},
    )
    for record in records:  # who accessed which customer, one event per record shown
        record_allowed(
            request,
            caller,
            action="records.read",
            resource=RESOURCE,
            customer=record.id,
            details={"via": "search"},
        )
    return RecordSearchResult(
        records=[_view(service, r, caller) for r in records], request_id=caller.request_id
    )


@router.get("", response_model=RecordPage)
def list_records(
    request: Request,
    caller: Annotated[Caller, Depends(requires(RECORDS_LIST))],
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> RecordPage:
    """A page of the tenant's records: ids, status and timestamps only."""
    service = records_of(request)
    page = _audited(
        request,
        caller,
        "records.list",
        None,
        lambda: service.list_page(tenant=caller.principal.tenant, cursor=cursor, limit=limit),
    )
    record_allowed(
        request,
        caller,
        action="records.list",
        resource=RESOURCE,
        details={"count": len(page.records)},
    )
    return RecordPage(
        records=[RecordSummary(**_summary_fields(r)) for r in page.records],
        next_cursor=page.next_cursor,
        request_id=caller.request_id,
    )


@router.get("/{record_id}", response_model=RecordRead)
def read_record(
    record_id: str,
    request: Request,
    caller: Annotated[Caller, Depends(requires(RECORDS_READ))],
) -> RecordRead:
    """The record as the caller's role may see it."""
    service = records_of(request)
    record = _audited(
        request,
        caller,
        "records.read",
        record_id,
        lambda: service.read(
            tenant=caller.principal.tenant,
            record_id=_existing_id(record_id),
            only=_shown(service, caller),
        ),
    )
    view = _view(service, record, caller)
    record_allowed(
        request,
        caller,
        action="records.read",
        resource=RESOURCE,
        customer=record_id,
        details={"fields_shown": len(view.fields)},
    )
    return view


@router.patch("/{record_id}", response_model=RecordRead)
def update_record(
    record_id: str,
    body: RecordUpdate,
    request: Request,
    caller: Annotated[Caller, Depends(requires(RECORDS_UPDATE))],
) -> RecordRead:
    """Re-encrypt the fields sent; ``null`` clears a field."""
    service = records_of(request)
    record = _audited(
        request,
        caller,
        "records.update",
        record_id,
        lambda: service.update(
            tenant=caller.principal.tenant,
            record_id=_existing_id(record_id),
            changes=body,
            only=_shown(service, caller),
        ),
    )
    record_allowed(
        request,
        caller,
        action="records.update",
        resource=RESOURCE,
        customer=record_id,
        entity_counts=record.entity_counts,
        details={"fields": len(body.model_fields_set)},
    )
    return _view(service, record, caller)


@router.delete("/{record_id}", response_model=RecordErased)
def erase_record(
    record_id: str,
    request: Request,
    caller: Annotated[Caller, Depends(requires(RECORDS_ERASE))],
) -> RecordErased:
    """Crypto-shred the record (right to erasure); its tombstone remains."""
    service = records_of(request)
    tombstone = _audited(
        request,
        caller,
        "records.erase",
        record_id,
        lambda: service.erase(tenant=caller.principal.tenant, record_id=_existing_id(record_id)),
    )
    record_allowed(
        request,
        caller,
        action="records.erase",
        resource=RESOURCE,
        customer=record_id,
        details={"crypto_shredded": True},
    )
    return RecordErased(**_summary_fields(tombstone), request_id=caller.request_id)


@router.post("/{record_id}/reveal", response_model=RecordReveal)
def reveal_record(
    record_id: str,
    body: RecordRevealRequest,
    request: Request,
    caller: Annotated[Caller, Depends(requires(RECORDS_REVEAL))],
) -> RecordReveal:
    """The full clear record, for a stated reason; the reason is audited (itself redacted)."""
    service = records_of(request)
    tenant = caller.principal.tenant
    record = _audited(
        request,
        caller,
        "records.reveal",
        record_id,
        lambda: service.read(tenant=tenant, record_id=_existing_id(record_id)),
    )
    known = {
        str(record.fields[name]): entity
        for name, entity in (
            ("full_name", "PERSON"),
            ("email", "EMAIL_ADDRESS"),
            ("phone", "PHONE_NUMBER"),
        )
        if record.fields.get(name)
    }
    reason = redacted_reason(request, body.reason, tenant=tenant, known=known)
    record_allowed(
        request,
        caller,
        action="records.reveal",
        resource=RESOURCE,
        customer=record_id,
        details={"reason": reason},
    )
    return RecordReveal(
        **_summary_fields(record), fields=dict(record.fields), request_id=caller.request_id
    )
