from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import exc, text

from tests.audit.conftest import record_events

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from guard.audit.service import AuditTrail


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET decision = 'deny' WHERE seq = 1",
        "DELETE FROM audit_events WHERE seq = 2",
        "TRUNCATE audit_events",
        "UPDATE audit_checkpoints SET head_hash = 'x'",
        "DELETE FROM audit_checkpoints",
    ],
)
def test_when_postgresql_is_asked_to_change_history_then_the_database_refuses(
    trail: AuditTrail, engine: Engine, statement: str
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("append-only triggers are a PostgreSQL feature; SQLite relies on verify")
    record_events(trail, 5)
    with pytest.raises(exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(statement))
    assert trail.verify().ok
