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
    from guard.redaction.service import Redactor


@dataclass
class Services:
    """Settings, storage, detection, redaction, access control and audit for one process."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    detector: Detector
    redactor: Redactor
    access: AccessControl
    api_keys: ApiKeyService
    jwt: JwtAuthenticator | None
    audit: AuditTrail
    metrics: Metrics


def build_services(settings: Settings, *, detector: Detector | None = None) -> Services:
    """Connect and migrate the database, load policies, keys and the NLP model."""
    from guard.access.apikeys import ApiKeyService  # noqa: PLC0415 - heavy imports, once
    from guard.access.enforcer import AccessControl  # noqa: PLC0415
    from guard.access.jwt_auth import JwtAuthenticator  # noqa: PLC0415
    from guard.api.metrics import Metrics  # noqa: PLC0415
    from guard.audit.service import AuditTrail  # noqa: PLC0415
    from guard.detection.engine import Detector  # noqa: PLC0415
    from guard.redaction.service import Redactor  # noqa: PLC0415
    from guard.storage.engine import create_engine_for, make_session_factory  # noqa: PLC0415
    from guard.storage.migrate import upgrade_to_head  # noqa: PLC0415

    # everything that can fail on configuration first, before a connection is opened
    detector = detector if detector is not None else Detector(settings=settings)
    redactor = Redactor(settings=settings)
    jwt_configured = any(
        (settings.jwt_secret, settings.jwt_public_key_file, settings.jwt_jwks_file)
    )
    jwt = JwtAuthenticator(settings) if jwt_configured else None
    engine = create_engine_for(settings)
    try:
        upgrade_to_head(engine)
        session_factory = make_session_factory(engine)
        audit = AuditTrail(settings, session_factory=session_factory)
        return Services(
            settings=settings,
            engine=engine,
            session_factory=session_factory,
            detector=detector,
            redactor=redactor,
            access=AccessControl(settings, audit=audit),
            api_keys=ApiKeyService(session_factory, audit=audit),
            jwt=jwt,
            audit=audit,
            metrics=Metrics(),
        )
    except BaseException:
        engine.dispose()
        raise
