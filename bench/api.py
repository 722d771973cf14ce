"""API latency and throughput: guard's POST /v1/redact against vanilla Presidio behind FastAPI.

One run, same machine, same messages, same load generator: an asyncio HTTP client over
loopback at several concurrency levels (each level a fixed number of requests after a warm-up),
against

- guard: ``guard serve`` (1 worker) with the embedded SQLite database, an API key, Casbin
  authorization and the audit trail on every request;
- the peer: vanilla Presidio (analyzer + anonymizer defaults) behind a minimal FastAPI endpoint
  (bench/presidio_peer.py), no security at all.

It then measures, in process, what authentication + authorization + audit add to one request
(API-key lookup, Casbin decision, one chained audit append committed to the database), on SQLite
(synchronous=FULL, the default: every commit synced to disk; and NORMAL) and, if reachable,
PostgreSQL. Results: bench/results/api.json.

    .venv/bin/python bench/api.py [--requests 400] [--concurrency 1 4 16]

The client shares the machine's two cores with the server; figures are for comparison within
the run, not capacity planning.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

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
    url: str, headers: dict[str, str], bodies: list[dict[str, str]], concurrency: int, total: int
) -> dict[str, float]:
    """Send ``total`` requests with ``concurrency`` in flight; latency percentiles and rate."""
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:

        async def worker() -> None:
            nonlocal errors
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                started = time.perf_counter()
                response = await client.post(url, json=bodies[i % len(bodies)], headers=headers)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": total,
        "errors": errors,
        "rps": round(total / elapsed, 1),
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 2),
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2),
    }


def run_levels(
    url: str, headers: dict[str, str], bodies: list[dict[str, str]], levels: list[int], total: int
) -> dict[str, dict[str, float]]:
    """A warm-up, then each concurrency level."""
    asyncio.run(load(url, headers, bodies, 2, 40))
    return {str(c): asyncio.run(load(url, headers, bodies, c, total)) for c in levels}


def start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A server process whose output is discarded."""
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603 - fixed argv


def security_overhead(
    database_url: str | None,
    workdir: Path,
    rounds: int = 2000,
    *,
    sqlite_synchronous: str = "full",
) -> dict[str, float]:
    """Time authenticate + enforce + audit append, in process, per request."""
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
    timings = []
    for i in range(rounds):
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
    services.engine.dispose()
    timings.sort()
    return {
        "p50_ms": round(1000 * statistics.median(timings), 3),
        "p99_ms": round(1000 * timings[int(len(timings) * 0.99)], 3),
        "rounds": rounds,
    }


_DETECTOR: object | None = None


def _shared_detector(settings: object, detector_class: type) -> object:
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
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
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

    guard_port, peer_port = free_port(), free_port()
    guard = start([python, "-m", "guard.cli", "serve", "--port", str(guard_port)], env)
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
            "--log-level",
            "warning",
        ],
        env,
    )
    try:
        wait_ready(f"http://127.0.0.1:{guard_port}/readyz")
        wait_ready(f"http://127.0.0.1:{peer_port}/docs")
        guard_result = run_levels(
            f"http://127.0.0.1:{guard_port}/v1/redact",
            {"Authorization": f"Bearer {key}"},
            bodies,
            args.concurrency,
            args.requests,
        )
        peer_result = run_levels(
            f"http://127.0.0.1:{peer_port}/redact", {}, bodies, args.concurrency, args.requests
        )
    finally:
        for process in (guard, peer):
            process.terminate()
            process.wait(timeout=30)

    overhead = {
        "sqlite_synchronous_full": security_overhead(None, workdir / "sqlite-full"),
        "sqlite_synchronous_normal": security_overhead(
            None, workdir / "sqlite-normal", sqlite_synchronous="normal"
        ),
    }
    pg_url = postgres_schema_url()
    if pg_url is not None:
        try:
            overhead["postgresql"] = security_overhead(pg_url, workdir / "pg")
        finally:
            drop_bench_schema()

    result = {
        "messages": len(bodies),
        "requests_per_level": args.requests,
        "guard": guard_result,
        "vanilla_presidio_fastapi": peer_result,
        "rps_ratio_guard_vs_presidio": {
            level: round(guard_result[level]["rps"] / peer_result[level]["rps"], 2)
            for level in guard_result
        },
        "auth_authz_audit_overhead_per_request": overhead,
    }
    print(json.dumps(result, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
