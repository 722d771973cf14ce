"""Time under hostile input, over real HTTP: uvicorn on loopback, real worker processes.

One slow request must not hold the API: health answers while a worker is busy, the time budget
ends a long analysis with a problem, a full pool refuses at once with ``Retry-After``, and a
client that hangs up stops its analysis. Checks are by order (what was still running when an
answer came), never by clock. The slow text is 900 KB of chat prose: seconds of spaCy work
whatever the recognizers do, against a 3 s budget.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from pydantic import SecretStr

from guard.api.app import create_app
from guard.api.services import build_services
from guard.detection.executor import AnalysisExecutor
from tests.fixtures.analysis import HANG_GUARD_SECONDS, SLOW_TEXT, settled, wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from guard.config import Settings


@dataclass
class Server:
    """A guard API served by uvicorn on a loopback port, with an agent's key."""

    url: str
    port: int
    key: str
    pool: AnalysisExecutor

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=HANG_GUARD_SECONDS)


def _serve(settings: Settings, pool: AnalysisExecutor, name: str, tmp: Path) -> Iterator[Server]:
    configured = settings.model_copy(
        update={
            "database_url": SecretStr(f"sqlite:///{tmp / f'{name}.db'}"),
            "var_dir": tmp,
            "keys_dir": tmp / f"{name}-keys",
            "audit_jsonl_path": tmp / f"{name}-audit.jsonl",
        }
    )
    services = build_services(configured, analysis=pool)
    _, key = services.api_keys.create(name=f"test-{name}", role="agent", tenant="acme")
    config = uvicorn.Config(
        create_app(services=services), host="127.0.0.1", port=0, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{name}", daemon=True)
    thread.start()
    wait_until(lambda: server.started, "uvicorn has started")
    port = int(server.servers[0].sockets[0].getsockname()[1])
    try:
        yield Server(url=f"http://127.0.0.1:{port}", port=port, key=key, pool=pool)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        services.engine.dispose()


@pytest.fixture(scope="module")
def tight(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One analysis worker, no queue, a 3 s budget."""
    pool = AnalysisExecutor(settings, workers=1, queue=0, timeout_seconds=3.0)
    try:
        yield from _serve(settings, pool, "tight", tmp_path_factory.mktemp("tight"))
    finally:
        pool.close()


@pytest.fixture(scope="module")
def shared(
    settings: Settings, analysis: AnalysisExecutor, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The session's pool: two workers, the default 30 s budget."""
    yield from _serve(settings, analysis, "shared", tmp_path_factory.mktemp("shared"))


@pytest.fixture
def threads() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=2) as executor:
        yield executor


def _redact(server: Server, text: str) -> httpx.Response:
    with server.client() as client:
        return client.post("/v1/redact", json={"text": text}, headers=server.headers())


def _metric(server: Server, name: str) -> float:
    with server.client() as client:
        text = client.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    pytest.fail(f"{name} not in /metrics")


def test_health_answers_while_the_only_worker_is_busy_on_a_slow_text(
    tight: Server, threads: ThreadPoolExecutor
) -> None:
    wait_until(settled(tight.pool), "the pool is idle")
    slow = threads.submit(_redact, tight, SLOW_TEXT)
    wait_until(lambda: tight.pool.status().busy == 1, "the slow text is being analysed")
    with tight.client() as client:
        health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    # answered while the analysis still ran: health did not wait for it
    assert not slow.done()
    assert _metric(tight, "guard_analysis_running") == 1.0
    assert not slow.done()
    assert slow.result().status_code == 422
    wait_until(settled(tight.pool), "a replacement worker is ready")


def test_past_the_budget_the_request_fails_the_worker_is_replaced_and_the_next_succeeds(
    tight: Server,
) -> None:
    wait_until(settled(tight.pool), "the pool is idle")
    before = tight.pool.status()
    over = _redact(tight, SLOW_TEXT)
    assert over.status_code == 422
    assert over.headers["content-type"] == "application/problem+json"
    problem = over.json()
    assert problem["type"] == "urn:guard:problem:analysis-budget-exceeded"
    assert "GUARD_ANALYSIS_TIMEOUT_SECONDS" in problem["detail"]
    assert "Ann" not in over.text
    assert "Boston" not in over.text
    wait_until(settled(tight.pool), "a replacement worker is ready")
    after = tight.pool.status()
    assert after.pids != before.pids
    assert after.over_budget == before.over_budget + 1
    assert _metric(tight, "guard_analysis_over_budget_total") == after.over_budget
    ok = _redact(tight, "Write to ann.smith@example.org please")
    assert ok.status_code == 200
    assert "ann.smith@example.org" not in ok.json()["results"][0]["text"]


def test_when_the_worker_is_busy_and_no_queue_is_left_a_request_gets_503_with_retry_after(
    tight: Server, threads: ThreadPoolExecutor
) -> None:
    wait_until(settled(tight.pool), "the pool is idle")
    slow = threads.submit(_redact, tight, SLOW_TEXT)
    wait_until(lambda: tight.pool.status().busy == 1, "the slow text is being analysed")
    busy = _redact(tight, "Write to ann.smith@example.org please")
    assert not slow.done()  # refused at once, while the slow one still ran
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == "1"
    assert busy.json()["type"] == "urn:guard:problem:busy"
    assert "ann.smith" not in busy.text
    assert _metric(tight, "guard_analysis_refused_busy_total") >= 1
    assert slow.result().status_code == 422
    wait_until(settled(tight.pool), "a replacement worker is ready")


def test_when_the_client_hangs_up_its_analysis_is_stopped(shared: Server) -> None:
    pool = shared.pool
    wait_until(settled(pool), "the pool is idle")
    before = pool.status()
    body = json.dumps({"text": SLOW_TEXT}).encode()
    head = (
        "POST /v1/redact HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n"
        f"Authorization: Bearer {shared.key}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", shared.port)) as sock:
        sock.sendall(head + body)
        wait_until(lambda: len(pool.status().busy_pids) == 1, "the slow text is being analysed")
        victim = pool.status().busy_pids[0]
    # the socket is closed: the worker analysing its text is stopped and replaced, long
    # before the 30 s budget could have done it
    wait_until(lambda: pool.status().cancelled == before.cancelled + 1, "the analysis stopped")
    wait_until(settled(pool), "a replacement worker is ready")
    after = pool.status()
    assert victim not in after.pids
    assert after.over_budget == before.over_budget
    assert _metric(shared, "guard_analysis_cancelled_total") == after.cancelled
    ok = _redact(shared, "Write to ann.smith@example.org please")
    assert ok.status_code == 200


def test_the_app_stops_the_pool_it_built_but_not_one_it_was_given(
    settings: Settings, analysis: AnalysisExecutor, tmp_path: Path
) -> None:
    configured = settings.model_copy(
        update={
            "database_url": SecretStr(f"sqlite:///{tmp_path / 'own.db'}"),
            "var_dir": tmp_path,
            "keys_dir": tmp_path / "keys",
            "analysis_workers": 1,
        }
    )
    app = create_app(configured)
    built = app.state.services.analysis
    assert isinstance(built, AnalysisExecutor)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        pids = built.status().pids
        assert len(pids) == 1
    assert built.status().ready == 0
    assert all(_process_gone(pid) for pid in pids)
    given = build_services(configured, analysis=analysis)
    with TestClient(create_app(services=given)) as client:
        assert client.get("/healthz").status_code == 200
    given.engine.dispose()
    assert analysis.status().ready == analysis.workers


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
