"""The record of processing and the privacy notice over HTTP (``/v1/compliance``).

``GET /v1/compliance/ropa?format=md|json`` and ``GET /v1/compliance/notice``, for the caller's
tenant, with ``compliance:read`` (compliance officers and admins). Both are generated from the
policy files on disk at the time of the request, by the same functions as
``guard compliance ropa`` and ``guard compliance notice``, and neither holds customer data. Each
answer is audited with the document's sha256, so the trail shows which version of the record
an officer was given, and the same policies always give the same bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response

from guard.access.permissions import COMPLIANCE_READ
from guard.api.routing import GuardRoute
from guard.api.security import Caller, record_allowed, requires, services_of
from guard.subjects.notice import privacy_notice
from guard.subjects.ropa import record_of_processing

if TYPE_CHECKING:
    from guard.subjects.facts import Document

router = APIRouter(prefix="/v1/compliance", tags=["compliance"], route_class=GuardRoute)

_MARKDOWN = {"text/markdown": {"schema": {"type": "string"}}}


def _answer(
    request: Request,
    caller: Caller,
    document: Document,
    *,
    action: str,
    details: dict[str, str | int | bool] | None = None,
) -> Response:
    """Audit the document by its sha256, then send it."""
    record_allowed(
        request,
        caller,
        action=action,
        resource=action.replace(".", ":"),
        details={**(details or {}), "compliance_sha256": document.sha256},
    )
    return Response(
        document.text,
        media_type=document.media_type,
        headers={"Content-Disposition": f'inline; filename="{document.filename}"'},
    )


@router.get(
    "/ropa",
    response_model=None,
    responses={
        200: {
            "description": "The record of processing (GDPR Art. 30(1)) as Markdown or JSON.",
            "content": {**_MARKDOWN, "application/json": {"schema": {"type": "object"}}},
        },
    },
)
def get_record_of_processing(
    request: Request,
    caller: Annotated[Caller, Depends(requires(COMPLIANCE_READ))],
    format: Literal["md", "json"] = "md",  # noqa: A002 - the query parameter's name
) -> Response:
    """The record of processing activities for the caller's tenant, made from the policies."""
    document = record_of_processing(
        services_of(request).settings, tenant=caller.principal.tenant, fmt=format
    )
    return _answer(request, caller, document, action="compliance.ropa", details={"format": format})


@router.get(
    "/notice",
    response_model=None,
    responses={
        200: {
            "description": "The privacy notice for customers, as Markdown.",
            "content": _MARKDOWN,
        },
    },
)
def get_privacy_notice(
    request: Request,
    caller: Annotated[Caller, Depends(requires(COMPLIANCE_READ))],
) -> Response:
    """The privacy notice for the caller's tenant's customers, made from the same facts."""
    document = privacy_notice(services_of(request).settings, tenant=caller.principal.tenant)
    return _answer(request, caller, document, action="compliance.notice")
