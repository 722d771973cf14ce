"""Shared fixtures: isolated settings, one detector, one analysis pool, fresh databases."""

from __future__ import annotations

import os
import socket
import uuid
import warnings
from typing import TYPE_CHECKING

import pytest
import sqlalchemy
import structlog
from pydantic import SecretStr

from guard.config import PROJECT_ROOT, Settings
from guard.detection.engine import Detector
from guard.detection.executor import AnalysisExecutor

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

DATA_DIR = PROJECT_ROOT.parent / "shared" / "data" / "pii"


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Repository policies, keys in a temporary folder, the installed pinned model."""
    return Settings(keys_dir=tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def detector(settings: Settings) -> Iterator[Detector]:
    """One detector for the whole run: loading the model takes a second."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*\[W095\].*")
        yield Detector(settings=settings)


@pytest.fixture(scope="session")
def analysis(settings: Settings) -> Iterator[AnalysisExecutor]:
    """One pool of two analysis worker processes for the whole run, as the API uses it.

    Starting workers loads the model in each: every API test shares this pool instead.
    """
    pool = AnalysisExecutor(settings, workers=2)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def network_attempts(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every socket connection or name lookup now fails; the list records each attempt."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append((args, kwargs))
        raise OSError("network is blocked in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


@pytest.fixture
def data_dir() -> Path:
    """The labeled development sets, when ../shared is beside the checkout."""
    if not DATA_DIR.is_dir():
        pytest.skip("../shared/data/pii is not beside this checkout")
    return DATA_DIR


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """The CLI configures structlog for its process; give every test the defaults back."""
    yield
    structlog.reset_defaults()


# ---------------------------------------------------------------------------- databases
# Storage-backed tests run against both the embedded SQLite file and PostgreSQL
# (127.0.0.1:5432, trust auth, database `test`). Each test gets its own SQLite file or its own
# PostgreSQL schema, migrated to head, and dropped afterwards: tests never see each other's rows.

POSTGRES_URL = os.environ.get(
    "GUARD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_settings(
    request: pytest.FixtureRequest, tmp_path: Path, settings: Settings
) -> Iterator[Settings]:
    """Settings whose database is a fresh, migrated SQLite file or PostgreSQL schema."""
    from guard.storage.engine import create_engine_for  # noqa: PLC0415
    from guard.storage.migrate import upgrade_to_head  # noqa: PLC0415

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'guard.db'}"
        configured = settings.model_copy(
            update={"database_url": SecretStr(url), "var_dir": tmp_path}
        )
        engine = create_engine_for(configured)
        upgrade_to_head(engine)
        engine.dispose()
        yield configured
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    schema_url = sqlalchemy.engine.make_url(POSTGRES_URL).update_query_dict(
        {"options": f"-csearch_path={schema}"}
    )
    configured = settings.model_copy(
        update={
            "database_url": SecretStr(schema_url.render_as_string(hide_password=False)),
            "var_dir": tmp_path,
        }
    )
    engine = create_engine_for(configured)
    upgrade_to_head(engine)
    engine.dispose()
    try:
        yield configured
    finally:
        with admin.begin() as conn:
            conn.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def engine(db_settings: Settings) -> Iterator[Engine]:
    """An engine on ``db_settings``'s fresh database, disposed after the test."""
    from guard.storage.engine import create_engine_for  # noqa: PLC0415

    engine = create_engine_for(db_settings)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions on :func:`engine`."""
    from guard.storage.engine import make_session_factory  # noqa: PLC0415

    return make_session_factory(engine)
