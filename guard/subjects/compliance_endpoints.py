"""The record of processing and the privacy notice over HTTP (``/v1/compliance``)."""

from __future__ import annotations

from fastapi import APIRouter

from guard.api.routing import GuardRoute

router = APIRouter(prefix="/v1/compliance", tags=["compliance"], route_class=GuardRoute)
