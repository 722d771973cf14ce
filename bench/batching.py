"""Dynamic batching in the analysis pool: N client threads, batching on against off.

Each client thread sends single-text requests (short texts of presidio_generated_large, tenant
``acme``) straight to an ``AnalysisExecutor`` of 1 and 2 worker processes, the queue as long as
the clients (so nothing is refused), with batching off and on in the same run. Reported per
level: texts/s, p50 and p99 latency (queue wait included) and requests per batch; the peer is the
same pool with batching off. Results: bench/results/batching.json.

    .venv/bin/python bench/batching.py [--clients 1 4 16 64] [--workers 1 2]

The API benchmark (bench/api.py) measures the same effect end to end, through HTTP,
authentication, Casbin and the audit trail.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "pii" / "presidio_generated_large.jsonl"
RESULTS = ROOT / "bench" / "results" / "batching.json"
#: Requests per level: enough for a stable median at each concurrency.
REQUESTS = {1: 300, 4: 600, 16: 1280, 64: 1280}


def texts() -> list[str]:
    """The first 3,000 texts of the development set (83 characters on average)."""
    with DATA.open(encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle][:3000]


def run(corpus: list[str], *, workers: int, batching: bool, clients: int) -> dict[str, Any]:
    """One level: ``clients`` threads, each sending its share of the requests in turn."""
    from guard.config import Settings  # noqa: PLC0415 - after the warnings filter
    from guard.detection.executor import AnalysisExecutor  # noqa: PLC0415
    from guard.logging import configure_logging  # noqa: PLC0415

    settings = Settings(
        keys_dir=Path(tempfile.mkdtemp()), analysis_batching=batching, log_level="warning"
    )
    configure_logging(settings)
    pool = AnalysisExecutor(settings, workers=workers, queue=clients, timeout_seconds=60)
    try:
        for text in corpus[:20]:  # warm-up: every worker has run the pipeline
            pool.analyze(text, tenant="acme")
        before = pool.status()
        per = REQUESTS.get(clients, 1280) // clients
        latencies: list[float] = []
        lock = threading.Lock()

        def client(index: int) -> None:
            mine = []
            for n in range(per):
                text = corpus[(index * per + n) % len(corpus)]
                started = time.perf_counter()
                pool.analyze(text, tenant="acme")
                mine.append(time.perf_counter() - started)
            with lock:
                latencies.extend(mine)

        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as threads:
            list(threads.map(client, range(clients)))
        elapsed = time.perf_counter() - started
        after = pool.status()
    finally:
        pool.close()
    latencies.sort()
    count = len(latencies)
    batches = after.batches - before.batches
    return {
        "workers": workers,
        "clients": clients,
        "batching": batching,
        "requests": count,
        "texts_per_s": round(count / elapsed, 1),
        "p50_ms": round(1000 * latencies[count // 2], 1),
        "p99_ms": round(1000 * latencies[min(count - 1, int(count * 0.99))], 1),
        "requests_per_batch": (
            round((after.batched_requests - before.batched_requests) / batches, 1)
            if batches
            else None
        ),
        "refused": after.refused_busy - before.refused_busy,
    }


def main() -> None:
    """Every level with batching off, then on; a table and the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=r".*\[W095\].*")
    corpus = texts()
    rows = []
    print("workers clients  off texts/s  on texts/s  ratio  p50 off/on ms  p99 off/on ms")
    for workers in args.workers:
        for clients in args.clients:
            off = run(corpus, workers=workers, batching=False, clients=clients)
            on = run(corpus, workers=workers, batching=True, clients=clients)
            ratio = round(on["texts_per_s"] / off["texts_per_s"], 2)
            rows.append({"off": off, "on": on, "ratio": ratio})
            p50 = f"{off['p50_ms']:>6}/{on['p50_ms']:<6}"
            p99 = f"{off['p99_ms']:>6}/{on['p99_ms']}"
            print(
                f"{workers:>7} {clients:>7} {off['texts_per_s']:>12} {on['texts_per_s']:>11} "
                f"{ratio:>6}  {p50} {p99}",
                flush=True,
            )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"levels": rows}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
