"""API throughput and latency: guard's POST /v1/redact against vanilla Presidio behind FastAPI.

One run, same machine, same messages, same worker count on both sides, and an external load
generator (wrk, from Debian's package; a separate process written in C, so the client takes
little of the two cores) at several concurrency levels, each for a fixed duration after a
warm-up, against

- guard: ``guard serve --workers N`` with the embedded SQLite database (synchronous=FULL), an
  API key, Casbin authorization and a durable audit event on every request;
- the peer: vanilla Presidio (analyzer + anonymizer defaults) behind a minimal FastAPI endpoint
  (bench/presidio_peer.py) under ``uvicorn --workers N``, no security at all.

It then measures, in process, what authentication + authorization + audit add to one request
(API-key lookup, Casbin decision, one chained audit event committed durably): one caller at a
time, and 16 callers at once (group commit: one fsync serves every event queued behind it), on
SQLite (synchronous=FULL, the default, and NORMAL) and, if reachable, PostgreSQL.
Results: bench/results/api.json.

    .venv/bin/python bench/api.py [--workers N] [--duration 10] [--concurrency 1 4 16 64]
                                  [--output bench/results/api.json]

Without wrk on the PATH the load comes from an asyncio client in this process instead (noted in
the results). Figures are for comparison within the run, not capacity planning.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

WRK = shutil.which("wrk")
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "api.json"
DATA = ROOT.parent / "shared" / "data" / "pii" / "abcd_dev.jsonl"
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

FALLBACK_MESSAGES = [
    "Hi, my name is Joseph Banter and my order 4627648389 never arrived.",
    "You can reach me at (845) 450-5693 or josephb8@email.com",
    "Please ship it to 777 Brockton Avenue, Abington MA 02351 instead.",
    "Thanks! Have a great day",
]


def messages() -> list[str]:
    """Short customer-service messages: the ABCD turns if present, else a few of our own."""
    if DATA.exists():
        texts = [json.loads(line)["text"] for line in DATA.read_text(encoding="utf-8").splitlines()]
        return [t for t in texts if t.strip()]
    return FALLBACK_MESSAGES


def free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, timeout: float = 60.0) -> None:
    """Poll until the server answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    msg = f"server at {url} did not become ready"
    raise RuntimeError(msg)


async def load(
    url: str,
    headers: dict[str, str],
    bodies: list[dict[str, str]],
    concurrency: int,
    seconds: float,
) -> dict[str, float]:
    """The fallback client: ``concurrency`` requests in flight for ``seconds``."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60.0) as client:
        stop = time.perf_counter() + seconds

        async def worker(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.perf_counter() < stop:
                started = time.perf_counter()
                response = await client.post(url, json=bodies[i % len(bodies)], headers=headers)
                latencies.append(time.perf_counter() - started)
                errors += response.status_code != 200
                i += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(n * 7) for n in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 2),
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2),
    }


def wrk_load(
    url: str, auth: str | None, bodies_file: Path, concurrency: int, seconds: float
) -> dict[str, float]:
    """Run wrk: ``concurrency`` connections for ``seconds``; rate and latency percentiles."""
    env = {**os.environ, "GUARD_BENCH_BODIES": str(bodies_file), "GUARD_BENCH_AUTH": auth or ""}
    threads = min(concurrency, 2)
    assert WRK is not None
    out = subprocess.run(  # noqa: S603 - fixed argv
        [
            WRK,
            f"-t{threads}",
            f"-c{concurrency}",
            f"-d{seconds:g}s",
            "--timeout",
            "60s",
            "-s",
            str(ROOT / "bench" / "load.lua"),
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    requests = figures["requests"]
    return {
        "requests": requests,
        "errors": figures["socket_errors"] + figures["status_errors"],
        "rps": round(requests / (figures["duration_us"] / 1e6), 1),
        "p50_ms": round(figures["p50_us"] / 1000, 2),
        "p99_ms": round(figures["p99_us"] / 1000, 2),
    }


def run_levels(
    url: str,
    auth: str | None,
    bodies: list[dict[str, str]],
    levels: list[int],
    seconds: float,
) -> dict[str, dict[str, float]]:
    """A warm-up, then each concurrency level (with wrk when installed)."""
    headers = {"Authorization": auth} if auth else {}
    if WRK is None:
        asyncio.run(load(url, headers, bodies, 2, 3.0))
        return {str(c): asyncio.run(load(url, headers, bodies, c, seconds)) for c in levels}
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as handle:
        handle.writelines(json.dumps(body) + "\n" for body in bodies)
    bodies_file = Path(handle.name)
    try:
        wrk_load(url, auth, bodies_file, 4, 3.0)
        return {str(c): wrk_load(url, auth, bodies_file, c, seconds) for c in levels}
    finally:
        bodies_file.unlink()


def start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A server process whose output is discarded."""
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603 - fixed argv


def security_overhead(
    database_url: str | None,
    workdir: Path,
    rounds: int = 2000,
    *,
    sqlite_synchronous: str = "full",
    callers: int = 1,
) -> dict[str, float]:
    """Time authenticate + enforce + durable audit append, in process, per request.

    With ``callers`` > 1 they run at once, as a loaded server's request threads do: each
    event still returns only once committed, but one commit (one fsync) serves the group
    queued behind it. ``amortized_ms`` is the wall time per request.
    """
    from guard.access.permissions import REDACT  # noqa: PLC0415
    from guard.api.services import build_services  # noqa: PLC0415
    from guard.config import Settings  # noqa: PLC0415
    from guard.detection.engine import Detector  # noqa: PLC0415

    update: dict[str, object] = {
        "var_dir": workdir,
        "keys_dir": workdir / "keys",
        "sqlite_synchronous": sqlite_synchronous,
    }
    settings = Settings(**update)  # type: ignore[arg-type]
    if database_url is not None:
        settings = Settings(**update, database_url=database_url)  # type: ignore[arg-type]
    services = build_services(settings, detector=_shared_detector(settings, Detector))
    _, key = services.api_keys.create(name="bench", role="agent", tenant="acme")
    timings: list[float] = []

    def one_caller(offset: int) -> None:
        for i in range(offset, rounds, callers):
            started = time.perf_counter()
            principal = services.api_keys.authenticate(key)
            decision = services.access.enforce(principal, REDACT)
            services.audit.record(
                action="text.redact",
                resource="channel:message",
                decision="allow" if decision.allowed else "deny",
                outcome="success",
                principal=principal.id,
                role=principal.role,
                tenant=principal.tenant,
                request_id=f"bench-{i}",
                entity_counts={"PERSON": 1},
            )
            timings.append(time.perf_counter() - started)

    writer = services.audit.writer
    groups_before, events_before = writer.groups, writer.events
    threads = [threading.Thread(target=one_caller, args=(n,)) for n in range(callers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    groups = writer.groups - groups_before
    services.engine.dispose()
    timings.sort()
    return {
        "callers": callers,
        "p50_ms": round(1000 * statistics.median(timings), 3),
        "p99_ms": round(1000 * timings[int(len(timings) * 0.99)], 3),
        "amortized_ms": round(1000 * elapsed / len(timings), 3),
        "events_per_commit": round((writer.events - events_before) / max(groups, 1), 1),
        "rounds": rounds,
    }


_DETECTOR: Any = None


def _shared_detector(settings: object, detector_class: type) -> Any:  # noqa: ANN401 - a Detector
    global _DETECTOR  # noqa: PLW0603 - load the model once for both databases
    if _DETECTOR is None:
        _DETECTOR = detector_class(settings=settings)
    return _DETECTOR


def postgres_schema_url() -> str | None:
    """A fresh schema on the local PostgreSQL for the overhead run, or None if unreachable."""
    import sqlalchemy  # noqa: PLC0415

    schema = f"bench_{os.getpid()}"
    try:
        engine = sqlalchemy.create_engine(POSTGRES_URL)
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
    except Exception:  # noqa: BLE001 - no PostgreSQL here: skip that figure
        return None
    url = sqlalchemy.engine.make_url(POSTGRES_URL).update_query_dict(
        {"options": f"-csearch_path={schema}"}
    )
    return url.render_as_string(hide_password=False)


def drop_bench_schema() -> None:
    """Leave the shared PostgreSQL database as the run found it."""
    import sqlalchemy  # noqa: PLC0415

    engine = sqlalchemy.create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f'DROP SCHEMA IF EXISTS "bench_{os.getpid()}" CASCADE'))
    engine.dispose()


def main(argv: list[str] | None = None) -> None:
    """Run both servers, load them, measure the security overhead, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--output", type=Path, default=RESULTS, help="results JSON file")
    args = parser.parse_args(argv)

    bodies = [{"text": t} for t in messages()]
    workdir = Path(tempfile.mkdtemp(prefix="guard-bench-"))
    env = {**os.environ, "GUARD_VAR_DIR": str(workdir), "GUARD_KEYS_DIR": str(workdir / "keys")}
    env.pop("GUARD_DATABASE_URL", None)
    python = sys.executable

    created = subprocess.run(  # noqa: S603 - fixed argv
        [
            python,
            "-m",
            "guard.cli",
            "principals",
            "create",
            "--name",
            "bench",
            "--role",
            "agent",
            "--tenant",
            "acme",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = next(word for word in created.stdout.split() if word.startswith("gk_"))

    workers = str(args.workers)
    guard_port, peer_port = free_port(), free_port()
    guard = start(
        [python, "-m", "guard.cli", "serve", "--port", str(guard_port), "--workers", workers], env
    )
    peer = start(
        [
            python,
            "-m",
            "uvicorn",
            "--app-dir",
            str(ROOT / "bench"),
            "presidio_peer:app",
            "--port",
            str(peer_port),
            "--workers",
            workers,
            "--log-level",
            "warning",
        ],
        env,
    )
    try:
        wait_ready(f"http://127.0.0.1:{guard_port}/readyz", timeout=180)
        wait_ready(f"http://127.0.0.1:{peer_port}/docs", timeout=180)
        guard_result = run_levels(
            f"http://127.0.0.1:{guard_port}/v1/redact",
            f"Bearer {key}",
            bodies,
            args.concurrency,
            args.duration,
        )
        peer_result = run_levels(
            f"http://127.0.0.1:{peer_port}/redact", None, bodies, args.concurrency, args.duration
        )
    finally:
        for process in (guard, peer):
            process.terminate()
            process.wait(timeout=60)

    overhead: dict[str, dict[str, float]] = {}
    for callers in (1, 16):
        overhead[f"sqlite_synchronous_full_x{callers}"] = security_overhead(
            None, workdir / f"sqlite-full-{callers}", callers=callers
        )
    overhead["sqlite_synchronous_normal_x1"] = security_overhead(
        None, workdir / "sqlite-normal", sqlite_synchronous="normal"
    )
    pg_url = postgres_schema_url()
    if pg_url is not None:
        try:
            for callers in (1, 16):
                overhead[f"postgresql_x{callers}"] = security_overhead(
                    pg_url, workdir / f"pg-{callers}", callers=callers
                )
        finally:
            drop_bench_schema()

    result = {
        "messages": len(bodies),
        "workers_each_side": args.workers,
        "seconds_per_level": args.duration,
        "load_generator": "wrk" if WRK else "asyncio client (wrk not installed)",
        "guard": guard_result,
        "vanilla_presidio_fastapi": peer_result,
        "rps_ratio_guard_vs_presidio": {
            level: round(guard_result[level]["rps"] / peer_result[level]["rps"], 2)
            for level in guard_result
        },
        "guard_p99_over_p50": {
            level: round(guard_result[level]["p99_ms"] / guard_result[level]["p50_ms"], 1)
            for level in guard_result
        },
        "auth_authz_audit_overhead_per_request": overhead,
    }
    print(json.dumps(result, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
