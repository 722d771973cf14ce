"""Request and response bodies of the detection endpoint."""

from __future__ import annotations

from pydantic import BaseModel

from guard.redaction.schemas import TextsIn


class DetectRequest(TextsIn):
    """``POST /v1/detect``."""


class EntityOut(BaseModel):
    """A detected region: offsets and type, never the value."""

    start: int
    end: int
    entity_type: str
    score: float


class DetectedText(BaseModel):
    """The entities of one text."""

    entities: list[EntityOut]


class DetectResponse(BaseModel):
    """Results in the order of the request's texts."""

    results: list[DetectedText]
    request_id: str
