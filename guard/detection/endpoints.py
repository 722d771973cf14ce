"""Detection endpoint: offsets and types of the PII in one text or a batch."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from guard.access.permissions import DETECT
from guard.api.limits import check_texts
from guard.api.routing import GuardRoute
from guard.api.security import Caller, record_allowed, requires, services_of
from guard.detection.schemas import DetectedText, DetectRequest, DetectResponse, EntityOut

router = APIRouter(prefix="/v1", tags=["detection"], route_class=GuardRoute)


@router.post("/detect", response_model=DetectResponse)
def detect(
    body: DetectRequest,
    request: Request,
    caller: Annotated[Caller, Depends(requires(DETECT))],
) -> DetectResponse:
    """Find PII; the response carries offsets, types and scores, never values."""
    services = services_of(request)
    texts = body.as_list()
    check_texts(texts, services.settings, field="text" if body.text is not None else "texts")
    tenant = caller.principal.tenant
    counts: Counter[str] = Counter()
    results = []
    for entities in services.analysis.analyze_batch(texts, tenant=tenant):
        counts.update(e.entity_type for e in entities)
        results.append(
            DetectedText(
                entities=[
                    EntityOut(start=e.start, end=e.end, entity_type=e.entity_type, score=e.score)
                    for e in entities
                ]
            )
        )
    services.metrics.count_entities(counts)
    record_allowed(
        request,
        caller,
        action="text.detect",
        resource="text",
        outcome="success",
        entity_counts=dict(counts),
        details={"batch_size": len(texts)},
    )
    return DetectResponse(results=results, request_id=caller.request_id)
