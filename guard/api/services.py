"""The objects one API process shares across requests, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from guard.access.apikeys import ApiKeyService
    from guard.access.enforcer import AccessControl
    from guard.access.jwt_auth import JwtAuthenticator
    from guard.api.metrics import Metrics
    from guard.audit.service import AuditTrail
    from guard.config import Settings
    from guard.detection.engine import Detector
    from guard.detection.executor import AnalysisService
    from guard.redaction.service import Redactor


@dataclass
class Services:
    """Settings, storage, detection, redaction, access control and audit for one process.

    ``analysis`` is where texts are analysed: the pool of analysis worker processes (the
    default), or a detector in this process. ``owns_analysis`` says whether these services
    started it (and so stop it in :meth:`close`) or were given it.
    """

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    analysis: AnalysisService
    redactor: Redactor
    access: AccessControl
    api_keys: ApiKeyService
    jwt: JwtAuthenticator | None
    audit: AuditTrail
    metrics: Metrics
    owns_analysis: bool = False

    def close(self) -> None:
        """Stop what these services started: the analysis workers and database connections."""
        self.metrics.close()
        if self.owns_analysis:
            self.analysis.close()
        self.api_keys.close()
        self.engine.dispose()


def build_services(
    settings: Settings,
    *,
    detector: Detector | None = None,
    analysis: AnalysisService | None = None,
) -> Services:
    """Connect and migrate the database, load policies, keys and the NLP model.

    Analysis: ``analysis`` if given (tests share one pool); else ``detector`` in this process
    if given; else a pool of ``GUARD_ANALYSIS_WORKERS`` processes (``0``: a detector in this
    process, no time budget).
    """
    from guard.access.apikeys import ApiKeyService  # noqa: PLC0415 - heavy imports, once
    from guard.access.enforcer import AccessControl  # noqa: PLC0415
    from guard.access.jwt_auth import JwtAuthenticator  # noqa: PLC0415
    from guard.api.metrics import Metrics  # noqa: PLC0415
    from guard.audit.service import AuditTrail  # noqa: PLC0415
    from guard.detection.engine import Detector  # noqa: PLC0415
    from guard.detection.executor import AnalysisExecutor, InProcessAnalysis  # noqa: PLC0415
    from guard.redaction.service import Redactor  # noqa: PLC0415
    from guard.storage.engine import create_engine_for, make_session_factory  # noqa: PLC0415
    from guard.storage.migrate import upgrade_to_head  # noqa: PLC0415

    # everything that can fail on configuration first, before a worker or connection starts
    redactor = Redactor(settings=settings)
    jwt_configured = any(
        (settings.jwt_secret, settings.jwt_public_key_file, settings.jwt_jwks_file)
    )
    jwt = JwtAuthenticator(settings) if jwt_configured else None
    owns_analysis = analysis is None
    if analysis is None:
        if detector is not None:
            analysis = InProcessAnalysis(detector)
            owns_analysis = False
        elif settings.analysis_workers == 0:
            analysis = InProcessAnalysis(Detector(settings=settings))
        else:
            analysis = AnalysisExecutor(settings)
    try:
        engine = create_engine_for(settings)
    except BaseException:
        if owns_analysis:
            analysis.close()
        raise
    try:
        upgrade_to_head(engine)
        session_factory = make_session_factory(engine)
        audit = AuditTrail(settings, session_factory=session_factory)
        metrics = Metrics()
        metrics.watch_analysis(analysis)
        return Services(
            settings=settings,
            engine=engine,
            session_factory=session_factory,
            analysis=analysis,
            redactor=redactor,
            # a reload in any worker (or `guard policies reload`) reaches this one too
            access=AccessControl(
                settings, audit=audit, follow=lambda: audit.latest_seq("policy.reload")
            ),
            api_keys=ApiKeyService(session_factory, audit=audit),
            jwt=jwt,
            audit=audit,
            metrics=metrics,
            owns_analysis=owns_analysis,
        )
    except BaseException:
        engine.dispose()
        if owns_analysis:
            analysis.close()
        raise
