"""Remembered API keys (SQLite and PostgreSQL): no query for a known key's row, and a revocation
made anywhere (another service on the same database, another process, plain SQL) refuses the key
on its very next call; expiry is checked against the clock; no readable count, no memory."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
import sqlalchemy
from pydantic import SecretStr
from sqlalchemy import event

from guard.access.apikeys import ApiKeyService
from guard.access.errors import AuthenticationError
from guard.storage.base import UtcDateTime
from guard.storage.engine import create_engine_for, make_session_factory

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import Engine

    from guard.config import Settings


_REVOKE_IN_SQL = sqlalchemy.text("UPDATE api_keys SET revoked_at = :now WHERE id = :id").bindparams(
    sqlalchemy.bindparam("now", type_=UtcDateTime())
)


@pytest.fixture
def engines(db_settings: Settings) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on one database: two processes' worth of connections."""
    first, second = create_engine_for(db_settings), create_engine_for(db_settings)
    yield first, second
    first.dispose()
    second.dispose()


def _service(engine: Engine, **kwargs: object) -> ApiKeyService:
    return ApiKeyService(make_session_factory(engine), **kwargs)  # type: ignore[arg-type]


def _statements(engine: Engine) -> list[str]:
    """Every statement the engine's sessions and connections run from now on."""
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", record)
    return seen


def test_when_a_key_was_verified_then_its_next_calls_read_no_key_row(
    engines: tuple[Engine, Engine],
) -> None:
    service = _service(engines[0])
    principal, key = service.create(name="bot", role="agent", tenant="acme")
    assert service.authenticate(key) == principal
    statements = _statements(engines[0])
    for _ in range(3):
        assert service.authenticate(key) == principal
    assert not [s for s in statements if "api_keys" in s]
    service.close()


def test_when_another_service_revokes_a_remembered_key_then_the_next_call_is_refused(
    engines: tuple[Engine, Engine],
) -> None:
    serving, administering = _service(engines[0]), _service(engines[1])
    principal, key = administering.create(name="bot", role="agent", tenant="acme")
    assert serving.authenticate(key) == principal
    assert serving.authenticate(key) == principal  # from memory
    administering.revoke(principal.id)
    with pytest.raises(AuthenticationError, match="revoked"):
        serving.authenticate(key)
    serving.close()
    administering.close()


def test_when_a_key_is_revoked_in_plain_sql_then_the_next_call_is_refused(
    engines: tuple[Engine, Engine],
) -> None:
    service = _service(engines[0])
    principal, key = service.create(name="bot", role="agent", tenant="acme")
    assert service.authenticate(key) == principal
    with engines[1].begin() as connection:
        connection.execute(_REVOKE_IN_SQL, {"now": datetime.now(UTC), "id": principal.id})
    with pytest.raises(AuthenticationError, match="revoked"):
        service.authenticate(key)
    service.close()


def test_when_a_key_row_is_deleted_then_the_next_call_is_refused(
    engines: tuple[Engine, Engine],
) -> None:
    service = _service(engines[0])
    principal, key = service.create(name="bot", role="agent", tenant="acme")
    assert service.authenticate(key) == principal
    with engines[1].begin() as connection:
        connection.execute(sqlalchemy.text("DELETE FROM api_keys"))
    with pytest.raises(AuthenticationError, match="unknown or wrong key"):
        service.authenticate(key)
    service.close()


def _revoke_in_child(url: str, key_id: str) -> None:
    from guard.config import Settings  # noqa: PLC0415

    engine = create_engine_for(Settings(database_url=SecretStr(url)))
    service = ApiKeyService(make_session_factory(engine))
    try:
        service.revoke(key_id)
    finally:
        service.close()
        engine.dispose()


def test_when_another_process_revokes_a_remembered_key_then_the_next_call_is_refused(
    db_settings: Settings, engines: tuple[Engine, Engine]
) -> None:
    service = _service(engines[0])
    principal, key = service.create(name="bot", role="agent", tenant="acme")
    assert service.authenticate(key) == principal
    assert db_settings.database_url is not None
    child = multiprocessing.get_context("spawn").Process(
        target=_revoke_in_child, args=(db_settings.database_url.get_secret_value(), principal.id)
    )
    child.start()
    child.join(timeout=120)
    assert child.exitcode == 0
    with pytest.raises(AuthenticationError, match="revoked"):
        service.authenticate(key)
    service.close()


def test_when_a_remembered_key_expires_then_the_clock_refuses_it(
    engines: tuple[Engine, Engine],
) -> None:
    now = [datetime(2030, 1, 1, tzinfo=UTC)]
    service = _service(engines[0], clock=lambda: now[0])
    principal, key = service.create(
        name="temp", role="analyst", tenant="acme", expires_in=timedelta(hours=1)
    )
    assert service.authenticate(key) == principal
    statements = _statements(engines[0])
    now[0] += timedelta(hours=1)
    with pytest.raises(AuthenticationError, match="expired"):
        service.authenticate(key)
    assert not statements  # refused from memory, by the clock alone
    service.close()


def test_when_a_remembered_key_is_presented_with_another_secret_then_it_is_refused(
    engines: tuple[Engine, Engine],
) -> None:
    service = _service(engines[0])
    _, key = service.create(name="bot", role="agent", tenant="acme")
    service.authenticate(key)
    forged = key[:-1] + ("A" if key[-1] != "A" else "B")
    with pytest.raises(AuthenticationError, match="unknown or wrong key"):
        service.authenticate(forged)
    service.close()


def test_when_the_change_count_cannot_be_read_then_every_call_reads_the_key_row(
    engines: tuple[Engine, Engine],
) -> None:
    service = _service(engines[0])
    principal, key = service.create(name="bot", role="agent", tenant="acme")
    with engines[1].begin() as connection:
        connection.execute(sqlalchemy.text("DELETE FROM api_key_changes"))
    statements = _statements(engines[0])
    for _ in range(2):
        assert service.authenticate(key) == principal
    assert len([s for s in statements if "api_keys" in s]) == 2
    with engines[1].begin() as connection:
        connection.execute(_REVOKE_IN_SQL, {"now": datetime.now(UTC), "id": principal.id})
    with pytest.raises(AuthenticationError, match="revoked"):
        service.authenticate(key)
    service.close()


def test_when_the_counting_connection_breaks_then_the_next_read_reconnects(
    engines: tuple[Engine, Engine],
) -> None:
    service = _service(engines[0])
    principal, key = service.create(name="bot", role="agent", tenant="acme")
    assert service.authenticate(key) == principal
    service._changes._connection.close()  # type: ignore[union-attr]
    assert service.authenticate(key) == principal  # that read failed: the row was read instead
    statements = _statements(engines[0])
    assert service.authenticate(key) == principal  # a new connection, and memory again
    assert not [s for s in statements if "api_keys" in s]
    service.close()
