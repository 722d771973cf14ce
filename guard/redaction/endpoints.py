"""Redaction endpoints: text, batches, JSON documents, and audited reveal of tokens."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from guard.access.permissions import REDACT, REVEAL
from guard.api.limits import check_lengths, check_texts
from guard.api.routing import GuardRoute
from guard.api.security import Caller, record_allowed, redacted_reason, requires, services_of
from guard.detection.entities import DetectedEntity
from guard.redaction.schemas import (
    RedactedEntity,
    RedactedJsonItem,
    RedactedText,
    RedactJsonRequest,
    RedactJsonResponse,
    RedactRequest,
    RedactResponse,
    RevealRequest,
    RevealResponse,
)

router = APIRouter(prefix="/v1", tags=["redaction"], route_class=GuardRoute)


@router.post("/redact", response_model=RedactResponse)
def redact(
    body: RedactRequest,
    request: Request,
    caller: Annotated[Caller, Depends(requires(REDACT))],
) -> RedactResponse:
    """Redact one text or a batch under the channel's policy, for the caller's tenant."""
    services = services_of(request)
    texts = body.as_list()
    field = "text" if body.text is not None else "texts"
    check_texts(texts, services.settings, field=field)
    tenant = caller.principal.tenant
    counts: Counter[str] = Counter()
    results = []
    for text, entities in zip(
        texts, services.analysis.analyze_batch(texts, tenant=tenant), strict=True
    ):
        result = services.redactor.redact_text(
            text, entities, channel=body.channel, tenant=tenant, scope=body.scope
        )
        counts.update(item.entity_type for item in result.items)
        results.append(
            RedactedText(
                text=result.text,
                entities=[
                    RedactedEntity(
                        entity_type=i.entity_type, start=i.start, end=i.end, operator=i.operator
                    )
                    for i in result.items
                ],
            )
        )
    services.metrics.count_entities(counts)
    record_allowed(
        request,
        caller,
        action="text.redact",
        resource=f"channel:{body.channel}",
        outcome="success",
        entity_counts=dict(counts),
        details={"batch_size": len(texts)},
    )
    return RedactResponse(results=results, request_id=caller.request_id)


@router.post("/redact/json", response_model=RedactJsonResponse)
def redact_json(
    body: RedactJsonRequest,
    request: Request,
    caller: Annotated[Caller, Depends(requires(REDACT))],
) -> RedactJsonResponse:
    """Redact every string and key of a JSON document; PII-named fields whatever their content.

    A key that redacts to the same text as another key of its object gets ``#2``, ``#3``...
    appended (in the object's order); item paths point into the redacted document.
    """
    services = services_of(request)
    tenant = caller.principal.tenant

    def detect(texts: list[str]) -> list[list[DetectedEntity]]:
        check_lengths(texts, services.settings, field="document")
        return list(services.analysis.analyze_batch(texts, tenant=tenant))

    document, items = services.redactor.redact_json(
        body.document,
        detect,
        channel=body.channel,
        tenant=tenant,
        scope=body.scope,
        max_depth=services.settings.max_json_depth,
    )
    counts = Counter(item.item.entity_type for item in items)
    services.metrics.count_entities(counts)
    record_allowed(
        request,
        caller,
        action="text.redact",
        resource=f"json:{body.channel}",
        outcome="success",
        entity_counts=dict(counts),
    )
    return RedactJsonResponse(
        document=document,
        items=[
            RedactedJsonItem(
                path=i.path,
                entity_type=i.item.entity_type,
                operator=i.item.operator,
                by_field_name=i.by_field_name,
                in_key=i.in_key,
            )
            for i in items
        ],
        request_id=caller.request_id,
    )


@router.post("/reveal", response_model=RevealResponse)
def reveal(
    body: RevealRequest,
    request: Request,
    caller: Annotated[Caller, Depends(requires(REVEAL))],
) -> RevealResponse:
    """Turn reversible tokens back into values; the reason is audited (itself redacted)."""
    services = services_of(request)
    tenant = caller.principal.tenant
    check_texts([body.text], services.settings, field="text")
    revealed = services.redactor.reveal_text(body.text, tenant=tenant)
    reason = redacted_reason(request, body.reason, tenant=tenant)
    record_allowed(
        request,
        caller,
        action="token.reveal",
        resource="text",
        outcome="success",
        details={"reason": reason, "tokens": body.text.count(":tok_v1_")},
    )
    return RevealResponse(text=revealed, request_id=caller.request_id)
