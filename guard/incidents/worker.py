"""The background scan of ``guard serve``: a process of its own, beside the API's workers.

The scanner runs in a separate process so that a slow rule (or a burst of a million events)
slows the scanner, never the API: it takes no request worker, no event loop, and not the API's
GIL. It scans every ``GUARD_INCIDENT_SCAN_SECONDS``, exits when ``guard serve`` stops (or
dies: it watches its parent), and survives a failing pass (a database restart, a bad rule file
edited in place) by logging the error type and trying again after the interval. Several
``guard serve`` hosts on one database may each run one: the cursor's compare-and-set makes
only one apply each batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from guard.background import BackgroundProcess, wait_or_stop

if TYPE_CHECKING:
    import threading
    from multiprocessing.synchronize import Event as ProcessEvent

    from guard.config import Settings

log = structlog.get_logger(__name__)


def run_scanner(
    settings: Settings,
    stop: threading.Event | ProcessEvent,
    *,
    parent_pid: int | None = None,
) -> None:
    """Scan every ``settings.incident_scan_seconds`` until ``stop`` is set (or the parent goes)."""
    from guard.audit.service import AuditTrail  # noqa: PLC0415 - in the worker process
    from guard.incidents.scanner import IncidentScanner  # noqa: PLC0415
    from guard.storage.engine import create_engine_for, make_session_factory  # noqa: PLC0415
    from guard.storage.migrate import upgrade_to_head  # noqa: PLC0415

    engine = create_engine_for(settings)
    try:
        upgrade_to_head(engine)
        factory = make_session_factory(engine)
        trail = AuditTrail(settings, factory)
        scanner = IncidentScanner(settings=settings, session_factory=factory, trail=trail)
        log.info("incident_scanner_started", rules=len(scanner.rules.rules))
        while not stop.is_set():
            try:
                report = scanner.scan()
                if report.opened or report.updated:
                    log.info(
                        "incident_scan",
                        events=report.events,
                        opened=report.opened,
                        updated=report.updated,
                        sealed=report.sealed,
                        cursor=report.cursor,
                    )
            except Exception as exc:
                log.exception("incident_scan_failed", error_type=type(exc).__name__)
            if wait_or_stop(stop, settings.incident_scan_seconds, parent_pid):
                break
    finally:
        engine.dispose()


class ScannerProcess(BackgroundProcess):
    """The scanner process of ``guard serve``: start it, stop it."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, run_scanner, name="guard-incident-scanner")
