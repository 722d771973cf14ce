from __future__ import annotations

import multiprocessing
import uuid
from typing import TYPE_CHECKING

import pytest
import sqlalchemy
from pydantic import SecretStr
from sqlalchemy import text

from guard.storage.base import Base
from guard.storage.engine import create_engine_for, make_session_factory, session_scope
from guard.storage.migrate import MIGRATIONS_DIR, current_revision, upgrade_to_head
from tests.conftest import POSTGRES_URL

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from guard.config import Settings


def _head_revision() -> str:
    from alembic.script import ScriptDirectory  # noqa: PLC0415

    from guard.storage.migrate import alembic_config  # noqa: PLC0415

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def test_when_migrated_then_revision_is_head_and_audit_tables_exist(db_settings: Settings) -> None:
    engine = create_engine_for(db_settings)
    try:
        assert current_revision(engine) == _head_revision()
        tables = set(sqlalchemy.inspect(engine).get_table_names())
        assert {"audit_events", "audit_checkpoints", "alembic_version"} <= tables
    finally:
        engine.dispose()


def test_when_upgrade_runs_again_then_it_is_a_no_op(db_settings: Settings) -> None:
    engine = create_engine_for(db_settings)
    try:
        upgrade_to_head(engine)
        upgrade_to_head(engine)
        assert current_revision(engine) == _head_revision()
    finally:
        engine.dispose()


def test_when_unit_of_work_fails_then_nothing_is_committed(db_settings: Settings) -> None:
    engine = create_engine_for(db_settings)
    factory = make_session_factory(engine)
    insert = text(
        "INSERT INTO audit_checkpoints (seq, head_hash, ts, signature, key_id) "
        "VALUES (1, 'h', CURRENT_TIMESTAMP, 's', 'k')"
    )
    try:

        def fail_after_insert() -> None:
            with session_scope(factory) as session:
                session.execute(insert)
                raise RuntimeError

        with pytest.raises(RuntimeError):
            fail_after_insert()
        with session_scope(factory) as session:
            count: int = session.execute(
                text("SELECT count(*) FROM audit_checkpoints")
            ).scalar_one()
        assert count == 0
        with session_scope(factory) as session:
            session.execute(insert)
        with session_scope(factory) as session:
            count = session.execute(text("SELECT count(*) FROM audit_checkpoints")).scalar_one()
        assert count == 1
    finally:
        engine.dispose()


def test_when_sqlite_engine_connects_then_wal_and_foreign_keys_are_on(
    settings: Settings, tmp_path: Path
) -> None:
    configured = settings.model_copy(
        update={"database_url": None, "var_dir": tmp_path / "nested" / "var"}
    )
    engine = create_engine_for(configured)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() >= 1000
        assert (tmp_path / "nested" / "var" / "guard.db").exists()
    finally:
        engine.dispose()


def test_when_models_are_imported_then_names_follow_the_convention() -> None:
    import guard.audit.models  # noqa: F401, PLC0415 - registers the tables

    table = Base.metadata.tables["audit_events"]
    assert table.primary_key.name == "pk_audit_events"


def test_when_migrations_are_packaged_then_env_and_first_revision_are_inside_the_package() -> None:
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert (MIGRATIONS_DIR / "versions" / "0001_audit.py").is_file()


def _migrate_in_child(url: str) -> None:
    from guard.config import Settings  # noqa: PLC0415

    engine = create_engine_for(Settings(database_url=SecretStr(url)))
    try:
        upgrade_to_head(engine)
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = sqlalchemy.engine.make_url(POSTGRES_URL).update_query_dict(
        {"options": f"-csearch_path={schema}"}
    )
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_when_several_processes_migrate_at_once_then_all_succeed(empty_database_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_migrate_in_child, args=(empty_database_url,)) for _ in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0, 0, 0]
    from guard.config import Settings  # noqa: PLC0415

    engine = create_engine_for(Settings(database_url=SecretStr(empty_database_url)))
    try:
        assert current_revision(engine) == _head_revision()
    finally:
        engine.dispose()
