"""The tool proxy's cost: the same tool call direct to the upstream and through guard, same run.

Both servers run as their own processes on loopback, as in production: the demo customer system
(``python -m examples.crm``, its own SQLite file, a bearer token) and ``guard serve`` (the
embedded SQLite database, synchronous=FULL, the default pool of analysis workers, budgets raised
for the run in a copy of policies/). One httpx client calls, alternating:

- ``direct``: ``GET /customers/C10xx`` on the CRM with its token (what an agent holding the
  credential would do);
- ``guard, pointer rules only``: ``POST /v1/tools/lookup_customer/call`` as an analyst, whose
  view names every field of the answer (pseudonyms, drops): no detection runs;
- ``guard, with detection``: the same call as an agent, whose view scans the free-text order notes
  through detection and redaction (the NER runs in an analysis worker).

and over MCP (the official SDK's client, one session each, alternating):

- ``mcp_direct``: ``lookup_customer`` on the CRM's MCP server;
- ``mcp_guard_pointer_rules``: ``lookup_customer`` on guard's ``/mcp`` as an analyst;
- ``guard_to_mcp_upstream``: ``POST /v1/tools/lookup_customer_mcp/call`` as an agent (notes
  scanned), guard acting as the MCP client of the CRM (after ``guard tools pin``).

Every guard call is authenticated, authorized (Casbin, per tool), budgeted, forwarded, redacted
and audited (one durable audit event). Results: bench/results/proxy.json.

    .venv/bin/python bench/proxy.py [--rounds 300]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import httpx
import yaml
from api import free_port, wait_ready  # bench/api.py: the same server helpers
from messages import summary  # bench/messages.py: the same statistics

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "proxy.json"
PYTHON = sys.executable


def main(argv: list[str] | None = None) -> None:
    """Run the three kinds of call, alternating; print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300, help="Calls of each kind.")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="guard-bench-proxy-"))
    token = secrets.token_urlsafe(24)
    crm_port, guard_port = free_port(), free_port()
    crm_url, guard_url = f"http://127.0.0.1:{crm_port}", f"http://127.0.0.1:{guard_port}"
    policies = _policies_without_budgets(work)
    env = {
        **os.environ,
        "CRM_TOKEN": token,
        "GUARD_VAR_DIR": str(work),
        "GUARD_KEYS_DIR": str(work / "keys"),
        "GUARD_POLICIES_DIR": str(policies),
        "GUARD_LOG_LEVEL": "warning",
        "GUARD_UPSTREAM_CRM_URL": crm_url,
        "GUARD_UPSTREAM_CRM_MCP_URL": f"{crm_url}/mcp",
        "GUARD_UPSTREAM_CRM_TOKEN": token,
    }
    keys = {role: _api_key(role, env) for role in ("agent", "analyst")}
    log = (work / "servers.log").open("wb")  # both servers' output, for when a call fails
    crm = subprocess.Popen(  # noqa: S603 - fixed argv
        [PYTHON, "-m", "examples.crm", "--port", str(crm_port), "--db", str(work / "crm.db")],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=log,
    )
    guard = subprocess.Popen(  # noqa: S603 - fixed argv
        [PYTHON, "-m", "guard.cli", "serve", "--port", str(guard_port)],
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        wait_ready(f"{crm_url}/healthz")
        wait_ready(f"{guard_url}/readyz")
        pinned = subprocess.run(  # noqa: S603 - fixed argv: pin the CRM's MCP tools for this run
            [PYTHON, "-m", "guard.cli", "tools", "pin"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if pinned.returncode != 0:
            msg = f"guard tools pin failed: {pinned.stderr[-500:]}"
            raise RuntimeError(msg)
        with httpx.Client() as client:
            timings = _measure(client, crm_url, guard_url, token, keys, args.rounds)
            timings["guard_to_mcp_upstream"] = _measure_one(
                lambda: client.post(
                    f"{guard_url}/v1/tools/lookup_customer_mcp/call",
                    json={"arguments": {"customer_id": "C1001"}},
                    headers={"Authorization": f"Bearer {keys['agent']}"},
                ),
                max(20, args.rounds // 10),
            )
        timings.update(
            anyio.run(_measure_mcp, f"{crm_url}/mcp", f"{guard_url}/mcp", token, keys, args.rounds)
        )
    finally:
        for process in (guard, crm):
            process.terminate()
            process.wait(timeout=30)
        log.close()
    result: dict[str, object] = {"rounds": args.rounds}
    figures = {kind: summary(values) for kind, values in timings.items()}
    peers = {
        "guard_pointer_rules": "direct",
        "guard_with_detection": "direct",
        "guard_to_mcp_upstream": "mcp_direct",
        "mcp_guard_pointer_rules": "mcp_direct",
    }
    for kind, peer in peers.items():
        base = figures[peer]
        figures[kind]["added_p50_ms"] = round(figures[kind]["p50_ms"] - base["p50_ms"], 3)
        figures[kind]["added_p99_ms"] = round(figures[kind]["p99_ms"] - base["p99_ms"], 3)
        figures[kind]["ratio_p50"] = round(figures[kind]["p50_ms"] / base["p50_ms"], 2)
    result.update(figures)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


def _policies_without_budgets(work: Path) -> Path:
    """A copy of policies/ whose tool budgets do not refuse a benchmark's thousand calls."""
    policies = work / "policies"
    shutil.copytree(ROOT / "policies", policies)
    path = policies / "tools.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for tool in data["tools"]:
        budget = tool.get("budget")
        if budget:
            budget["calls"] = 1_000_000
            if budget.get("customers"):
                budget["customers"] = 1_000_000
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return policies


def _api_key(role: str, env: dict[str, str]) -> str:
    created = subprocess.run(  # noqa: S603 - fixed argv
        [
            PYTHON,
            "-m",
            "guard.cli",
            "principals",
            "create",
            "--name",
            f"bench-{role}",
            "--role",
            role,
            "--tenant",
            "acme",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return next(word for word in created.stdout.split() if word.startswith("gk_"))


def _measure(
    client: httpx.Client,
    crm_url: str,
    guard_url: str,
    token: str,
    keys: dict[str, str],
    rounds: int,
) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {
        "direct": [],
        "guard_pointer_rules": [],
        "guard_with_detection": [],
    }
    calls: dict[str, Callable[[str], httpx.Response]] = {
        "direct": lambda cid: client.get(
            f"{crm_url}/customers/{cid}", headers={"Authorization": f"Bearer {token}"}
        ),
        "guard_pointer_rules": lambda cid: client.post(
            f"{guard_url}/v1/tools/lookup_customer/call",
            json={"arguments": {"customer_id": cid}},
            headers={"Authorization": f"Bearer {keys['analyst']}"},
        ),
        "guard_with_detection": lambda cid: client.post(
            f"{guard_url}/v1/tools/lookup_customer/call",
            json={"arguments": {"customer_id": cid}},
            headers={"Authorization": f"Bearer {keys['agent']}"},
        ),
    }
    for i in range(rounds + 20):
        customer_id = f"C{1001 + i % 50}"
        for kind, run in calls.items():
            started = time.perf_counter()
            response = run(customer_id)
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                msg = f"{kind}: {response.status_code} {response.text[:300]}"
                raise RuntimeError(msg)
            if i >= 20:
                timings[kind].append(elapsed)
    return timings


def _measure_one(run: Callable[[], httpx.Response], rounds: int) -> list[float]:
    """``rounds`` timings of one kind of call (after five warm-up calls)."""
    values = []
    for i in range(rounds + 5):
        started = time.perf_counter()
        response = run()
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            msg = f"{response.status_code} {response.text[:300]}"
            raise RuntimeError(msg)
        if i >= 5:
            values.append(elapsed)
    return values


async def _measure_mcp(
    crm_mcp: str, guard_mcp: str, token: str, keys: dict[str, str], rounds: int
) -> dict[str, list[float]]:
    """MCP ``lookup_customer`` direct and through guard's /mcp, one session each, alternating."""
    import httpx2  # noqa: PLC0415 - the SDK's HTTP client
    from mcp import Client  # noqa: PLC0415
    from mcp.client.streamable_http import streamable_http_client  # noqa: PLC0415

    timings: dict[str, list[float]] = {"mcp_direct": [], "mcp_guard_pointer_rules": []}
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as crm_http,
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {keys['analyst']}"}) as guard_http,
        Client(streamable_http_client(crm_mcp, http_client=crm_http)) as direct,
        Client(streamable_http_client(guard_mcp, http_client=guard_http)) as through,
    ):
        sessions = {"mcp_direct": direct, "mcp_guard_pointer_rules": through}
        for i in range(rounds + 20):
            arguments = {"customer_id": f"C{1001 + i % 50}"}
            for kind, session in sessions.items():
                started = time.perf_counter()
                result = await session.call_tool("lookup_customer", arguments)
                elapsed = time.perf_counter() - started
                if result.is_error:
                    msg = f"{kind}: the MCP call failed"
                    raise RuntimeError(msg)
                if i >= 20:
                    timings[kind].append(elapsed)
    return timings


if __name__ == "__main__":
    main()
