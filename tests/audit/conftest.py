"""Fixtures for audit tests: a trail on each database, and a way to tamper with it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import text

from guard.audit.service import AuditTrail
from guard.storage.engine import create_engine_for, make_session_factory

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker
    from sqlalchemy.sql import Executable

    from guard.config import Settings

CHECKPOINT_EVERY = 5


@pytest.fixture
def audit_settings(db_settings: Settings) -> Settings:
    return db_settings.model_copy(
        update={"audit_checkpoint_events": CHECKPOINT_EVERY, "audit_checkpoint_seconds": 3600.0}
    )


@pytest.fixture
def engine(audit_settings: Settings) -> Iterator[Engine]:
    engine = create_engine_for(audit_settings)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def trail(audit_settings: Settings, factory: sessionmaker[Session]) -> AuditTrail:
    return AuditTrail(audit_settings, factory)


def record_events(trail: AuditTrail, count: int, **overrides: Any) -> list[int]:
    fields: dict[str, Any] = {
        "action": "redact",
        "resource": "text",
        "decision": "allow",
        "outcome": "success",
        "principal": "agent-7",
        "role": "agent",
        "tenant": "acme",
    }
    fields.update(overrides)
    return [trail.record(**fields, details={"n": i}) for i in range(count)]


def tamper(engine: Engine, sql: str | Executable, params: dict[str, Any] | None = None) -> None:
    """Run SQL as the table owner would, with PostgreSQL's append-only triggers bypassed."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(sql) if isinstance(sql, str) else sql, params or {})
