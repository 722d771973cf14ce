"""Retention over HTTP (``/v1/retention``): the schedule, runs and legal holds."""

from __future__ import annotations

from fastapi import APIRouter

from guard.api.routing import GuardRoute

router = APIRouter(prefix="/v1/retention", tags=["retention"], route_class=GuardRoute)
