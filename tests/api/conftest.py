"""An app per test on a fresh database (SQLite and PostgreSQL), sharing one analysis pool."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient

from guard.api.app import create_app
from guard.api.services import Services, build_services

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager

    #: Opens an app like ``api`` with settings changed; it shuts down (lifespan) on exit.
    OpenApi = Callable[..., AbstractContextManager["Api"]]
    from pathlib import Path

    from guard.config import Settings
    from guard.detection.executor import AnalysisExecutor


@dataclass
class Api:
    """A test client, the services behind it, and one API key per role (tenant acme)."""

    client: TestClient
    services: Services
    keys: dict[str, str]
    settings: Settings

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


@pytest.fixture
def api(db_settings: Settings, analysis: AnalysisExecutor, tmp_path: Path) -> Iterator[Api]:
    settings = db_settings.model_copy(
        update={"audit_jsonl_path": tmp_path / "audit.jsonl", "keys_dir": tmp_path / "keys"}
    )
    services = build_services(settings, analysis=analysis)
    keys = {}
    for role in ("agent", "supervisor", "compliance_officer", "analyst", "admin"):
        _, key = services.api_keys.create(name=f"test-{role}", role=role, tenant="acme")
        keys[role] = key
    _, keys["other_tenant_supervisor"] = services.api_keys.create(
        name="other", role="supervisor", tenant="globex"
    )
    app = create_app(services=services)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client=client, services=services, keys=keys, settings=settings)
    services.engine.dispose()


@pytest.fixture
def open_api(
    db_settings: Settings, analysis: AnalysisExecutor, tmp_path: Path
) -> Iterator[OpenApi]:
    opened_services: list[Services] = []

    @contextmanager
    def opened(**updates: object) -> Iterator[Api]:
        settings = db_settings.model_copy(
            update={
                "audit_jsonl_path": tmp_path / "audit.jsonl",
                "keys_dir": tmp_path / "keys",
                **updates,
            }
        )
        services = build_services(settings, analysis=analysis)
        # disposed when the test ends: it may read the trail after the app has shut down
        opened_services.append(services)
        keys = {}
        for role in ("agent", "supervisor", "compliance_officer", "analyst", "admin"):
            _, keys[role] = services.api_keys.create(name=f"test-{role}", role=role, tenant="acme")
        with TestClient(create_app(services=services), raise_server_exceptions=False) as client:
            yield Api(client=client, services=services, keys=keys, settings=settings)

    yield opened
    for services in opened_services:
        services.engine.dispose()
