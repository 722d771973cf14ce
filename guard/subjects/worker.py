"""The retention scheduler of ``guard serve``: a process of its own, beside the API's workers.

Every ``GUARD_RETENTION_INTERVAL_SECONDS`` (default 3600; 0 turns it off) it runs one retention
pass (:meth:`~guard.subjects.retention.RetentionService.run`), which resumes an interrupted run
before starting a new one. Like the incident scanner (:mod:`guard.incidents.worker`) it runs in
its own process, so shredding a backlog of records never takes a request worker; it exits when
``guard serve`` stops (or dies: it watches its parent) and survives a failing pass (a database
restart, a broken policy file edited in place) by logging the error type and trying again at the
next interval. Several ``guard serve`` hosts on one database may each run one: a pass claims the
run's lease (compare-and-set), and a host that finds it held skips its pass. Zero periods are
never applied here: the scheduler skips those rules, logs and audits that it did; applying them
takes ``guard retention run --confirm-erase-all``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
import structlog

from guard.background import BackgroundProcess, wait_or_stop

if TYPE_CHECKING:
    import threading
    from multiprocessing.synchronize import Event as ProcessEvent

    from guard.config import Settings

log = structlog.get_logger(__name__)

#: The principal of the scheduler's runs and audit events.
SCHEDULER_PRINCIPAL = "scheduler"


def run_scheduler(
    settings: Settings,
    stop: threading.Event | ProcessEvent,
    *,
    parent_pid: int | None = None,
) -> None:
    """Run a retention pass every ``settings.retention_interval_seconds`` until stopped."""
    from guard.audit.service import AuditTrail  # noqa: PLC0415 - in the worker process
    from guard.storage.engine import create_engine_for, make_session_factory  # noqa: PLC0415
    from guard.storage.migrate import upgrade_to_head  # noqa: PLC0415
    from guard.subjects.retention import (  # noqa: PLC0415
        RetentionBusyError,
        build_retention_service,
    )

    engine = create_engine_for(settings)
    try:
        upgrade_to_head(engine)
        factory = make_session_factory(engine)
        trail = AuditTrail(settings, factory)
        log.info("retention_scheduler_started", interval=settings.retention_interval_seconds)
        while not stop.is_set():
            try:
                # built per pass: a policy file edited in place applies from the next pass
                service = build_retention_service(settings, factory, trail)
                report = service.run(started_by=SCHEDULER_PRINCIPAL, skip_zero_rules=True)
                log.info(
                    "retention_pass",
                    run_id=report.run_id,
                    resumed=report.resumed,
                    records=report.total("records"),
                    notes=report.total("notes"),
                    packages=report.total("subject_packages"),
                    audit_events=report.total("audit"),
                    held=report.held,
                )
            except RetentionBusyError:
                log.info("retention_pass_skipped", reason="another run holds the lease")
            except Exception as exc:
                log.exception("retention_pass_failed", error_type=type(exc).__name__)
            if wait_or_stop(stop, settings.retention_interval_seconds, parent_pid):
                break
    finally:
        engine.dispose()


class RetentionProcess(BackgroundProcess):
    """The retention scheduler process of ``guard serve``: start it, stop it.

    Stopping cuts a pass short after its current batch at the latest: the run keeps its lease,
    and the next pass (or ``guard retention run``) resumes it once the lease expires; nothing
    is lost or removed twice.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, run_scheduler, name="guard-retention")


def start_retention_scheduler(settings: Settings) -> RetentionProcess | None:
    """Start the scheduler for ``guard serve`` (one line on the console), unless switched off.

    The policy is loaded here first: a broken policies/retention.yaml stops start-up with the
    file and entry named, rather than failing every pass in the background.
    """
    if settings.retention_interval_seconds <= 0:
        click.echo("  retention: off (GUARD_RETENTION_INTERVAL_SECONDS=0)")
        return None
    from guard.subjects.policy import RETENTION_FILENAME, load_retention_policy  # noqa: PLC0415

    policy = load_retention_policy(settings.policies_dir / RETENTION_FILENAME)
    process = RetentionProcess(settings)
    process.start()
    zero = len(policy.zero_rules())
    skipped = f"; {zero} zero period(s) skipped" if zero else ""
    click.echo(
        f"  retention: every {settings.retention_interval_seconds:g} s "
        f"(policies/retention.yaml{skipped})"
    )
    return process
