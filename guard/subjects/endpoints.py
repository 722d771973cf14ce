"""Data subject requests over HTTP (``/v1/subjects``)."""

from __future__ import annotations

from fastapi import APIRouter

from guard.api.routing import GuardRoute

router = APIRouter(prefix="/v1/subjects", tags=["subjects"], route_class=GuardRoute)
