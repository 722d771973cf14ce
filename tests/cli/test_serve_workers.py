"""`guard serve` uses every core: one API worker per core, the cores shared by their pools."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from guard.cli import _analysis_per_worker
from guard.config import Settings

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def test_when_nothing_is_configured_then_there_is_one_worker_per_core() -> None:
    settings = Settings()
    cores = len(os.sched_getaffinity(0))
    assert settings.workers == min(64, cores)
    assert settings.analysis_workers == cores


def test_when_workers_share_the_cores_then_each_pool_gets_its_share_through_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # recorded, so that the value serve sets is undone after the test
    monkeypatch.setenv("GUARD_ANALYSIS_WORKERS", "1")
    monkeypatch.delenv("GUARD_ANALYSIS_WORKERS")
    # 8 cores' worth of analysis workers, not configured by the user
    settings = Settings.model_construct(
        _fields_set=set(), **Settings(analysis_workers=8).model_dump()
    )
    assert _analysis_per_worker(settings, 4) == 2
    assert os.environ["GUARD_ANALYSIS_WORKERS"] == "2"
    assert _analysis_per_worker(settings, 16) == 1  # never none


def test_when_the_analysis_pool_is_configured_then_serve_leaves_it_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GUARD_ANALYSIS_WORKERS", "3")
    settings = Settings()
    assert _analysis_per_worker(settings, 2) == 3
    assert os.environ["GUARD_ANALYSIS_WORKERS"] == "3"


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], Path]]:
    """`guard serve --workers 2` as a process, on its own SQLite and a copy of the policies."""
    policies = tmp_path / "policies"
    shutil.copytree(Settings().policies_dir, policies)
    env = {
        **os.environ,
        "GUARD_VAR_DIR": str(tmp_path / "var"),
        "GUARD_KEYS_DIR": str(tmp_path / "keys"),
        "GUARD_POLICIES_DIR": str(policies),
        "GUARD_INCIDENT_SCAN_SECONDS": "0",
        "GUARD_RETENTION_INTERVAL_SECONDS": "0",
        "GUARD_LOG_LEVEL": "warning",
    }
    for name in ("GUARD_DATABASE_URL", "GUARD_ANALYSIS_WORKERS", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    keys = {}
    for role in ("admin", "analyst"):
        created = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, "-m", "guard.cli", "principals", "create", "--name", role,
             "--role", role, "--tenant", "acme"],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        keys[role] = next(w for w in created.stdout.split() if w.startswith("gk_"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "guard.cli", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, "guard serve ended"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "guard serve did not become ready"
            time.sleep(0.3)
        yield url, keys, policies
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=60)
    assert "workers: 2 x 1 analysis" in output


def _served(metrics: str, route: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("guard_requests_total{") and f'route="{route}"' in line
    )


def test_when_two_workers_serve_then_metrics_count_both_and_a_reload_reaches_both(
    two_workers: tuple[str, dict[str, str], Path],
) -> None:
    url, keys, policies = two_workers
    before = _served(httpx.get(f"{url}/metrics", timeout=10).text, "/readyz")  # the start-up polls
    # new connections each: the kernel spreads them over both workers' accept queues
    for _ in range(20):
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200
    # whichever worker answers a scrape, it counts every worker's requests
    scrapes = {_served(httpx.get(f"{url}/metrics", timeout=10).text, "/readyz") for _ in range(8)}
    assert scrapes == {before + 20}
    # each worker's pool (one analysis process each) is in every scrape, once both have their
    # model loaded: /readyz answered by one worker says nothing of the other's pool, which on a
    # loaded machine may still be loading (each samples its pool every SAMPLE_SECONDS)
    deadline = time.monotonic() + 120
    while True:
        text = httpx.get(f"{url}/metrics", timeout=10).text
        if "guard_analysis_workers 2.0" in text.splitlines():
            break
        assert time.monotonic() < deadline, [
            line for line in text.splitlines() if line.startswith("guard_analysis_workers")
        ]
        time.sleep(0.5)

    analyst = {"Authorization": f"Bearer {keys['analyst']}"}
    assert httpx.get(f"{url}/v1/audit/events", headers=analyst, timeout=10).status_code == 403
    with (policies / "policy.csv").open("a", encoding="utf-8") as handle:
        handle.write("p, analyst, *, audit, read\n")
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    reloaded = httpx.post(f"{url}/v1/admin/policies/reload", headers=admin, timeout=10)
    assert reloaded.status_code == 200, reloaded.text
    time.sleep(1.5)  # each worker looks for a newer reload at most once a second
    statuses = {
        httpx.get(f"{url}/v1/audit/events", headers=analyst, timeout=10).status_code
        for _ in range(12)
    }
    assert statuses == {200}
