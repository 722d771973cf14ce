"""What every ``guard`` command group shares: exit codes, the group class, the database.

Kept apart from :mod:`guard.cli`, which registers every group when imported: a capability's
group (``guard subjects``, ``guard policies`` ...) uses this class without importing the rest,
and answers the same whether it runs under ``guard`` or on its own (embedded, tests).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from guard.errors import ConfigurationError, GuardError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.orm import Session, sessionmaker

    from guard.api.services import Services
    from guard.audit.service import AuditTrail
    from guard.config import Settings

#: Exit codes: 1 bad input or policy, 2 usage (click's own), 3 environment (model missing),
#: 4 ``guard serve`` cannot listen on its address (the port is taken, or not allowed).
EXIT_BAD_INPUT = 1
EXIT_ENVIRONMENT = 3
EXIT_ADDRESS_UNAVAILABLE = 4


class GuardGroup(click.Group):
    """Turns GuardError into a one-line message and an exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        """Run the command; report GuardError cleanly."""
        try:
            return super().invoke(ctx)
        except GuardError as exc:
            click.echo(f"guard: error: {exc.message}", err=True)
            ctx.exit(EXIT_ENVIRONMENT if isinstance(exc, ConfigurationError) else EXIT_BAD_INPUT)


@dataclass
class CliDatabase:
    """What a command works on: the configured database (migrated) and its audit trail.

    ``services`` is guard's service set with detection in-process, for the few commands that
    redact a stated reason or a note; every other command starts without loading the model.
    """

    settings: Settings
    session_factory: sessionmaker[Session]
    audit: AuditTrail
    services: Services | None = None


@contextlib.contextmanager
def open_database(settings: Settings, *, detection: bool = False) -> Iterator[CliDatabase]:
    """The configured database (migrated); with ``detection``, guard's services in-process."""
    if detection:
        from guard.api.services import build_services  # noqa: PLC0415 - heavy imports, once
        from guard.detection.engine import Detector  # noqa: PLC0415
        from guard.detection.executor import InProcessAnalysis  # noqa: PLC0415

        services = build_services(settings, analysis=InProcessAnalysis(Detector(settings=settings)))
        try:
            yield CliDatabase(settings, services.session_factory, services.audit, services)
        finally:
            services.close()
            services.analysis.close()
        return
    from guard.audit.service import AuditTrail  # noqa: PLC0415 - SQLAlchemy only when used
    from guard.storage.engine import create_engine_for, make_session_factory  # noqa: PLC0415
    from guard.storage.migrate import upgrade_to_head  # noqa: PLC0415

    engine = create_engine_for(settings)
    try:
        upgrade_to_head(engine)
        factory = make_session_factory(engine)
        yield CliDatabase(settings, factory, AuditTrail(settings, factory))
    finally:
        engine.dispose()
