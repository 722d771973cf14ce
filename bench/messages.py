"""The message guard's cost: POST /v1/messages/check against POST /v1/redact on the same texts.

One run, in process (the ASGI app driven by Starlette's test client: no sockets), on the
embedded SQLite database (synchronous=FULL, every audit event committed durably) and then on the
local PostgreSQL if it answers, each holding a few thousand customer records; detection in the
pool of two analysis worker processes (the default on these two-core machines: the check's own
steps run in the API process, as in production). For each text, the two requests alternate, so
both see the same machine state:

- ``POST /v1/redact`` (channel ``message``): authenticate, authorize, detect, redact, audit;
- ``POST /v1/messages/check`` with the conversation's customer: the same, plus reading that
  customer's record (its name, decrypted), the blind-index lookup of every identifier in the
  text (one query), the message policy and the tone rules. The lookup and the tone rules run
  while the text is in its analysis worker (``guard.detection.executor.meanwhile``), so what
  they add to the answer's time is less than what they cost: ``check_steps_p50_ms`` is that cost,
  each step timed alone.

Texts are about 300 characters with three identifiers (name, email, phone or account id): half
about the conversation's customer (allowed or redacted), half quoting another customer's
(blocked). It reports p50 and p99 of each endpoint, the difference at p50 (the issue's budget:
at most 1 ms) and the ratio, and the p50 of the check's own steps. Results:
bench/results/messages.json.

    .venv/bin/python bench/messages.py [--rounds 400] [--records 5000] [--no-postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "messages.json"

FIRST = ["Jane", "Rahul", "Maria", "Chen", "Olu", "Anna", "Diego", "Fatima", "Tom", "Ines"]
FIRST += ["Kofi", "Lena", "Marek", "Noor", "Priya", "Sven", "Yuki", "Zara", "Omar", "Greta"]
SYLLABLES = ["ka", "lo", "mi", "ren", "sa", "tor", "vel", "bri", "dan", "hol"]
TEMPLATES = [
    (
        "Hi {name}, thanks for your patience today. I have checked the order and the replacement "
        "will ship tomorrow morning. I sent the tracking link to {email} a minute ago. If anything "
        "looks wrong, reply here or call us back and quote {account} so we can find it quickly. "
        "Have a lovely evening!"
    ),
    (
        "Hello {name}, I am sorry about the delay with your refund. It was approved this morning "
        "and should reach your card within three to five business days. We will text {phone} "
        "when it is sent, and a receipt goes to {email}. Is there anything else I can help with?"
    ),
]


def surname(i: int) -> str:
    """A distinct made-up surname for every ``i`` below 1,000."""
    parts = [SYLLABLES[i % 10], SYLLABLES[(i // 10) % 10], SYLLABLES[(i // 100) % 10]]
    return "".join(parts).capitalize()


def people(count: int) -> list[dict[str, Any]]:
    """``count`` distinct customers (no two share a full name), with every identifier."""
    out = []
    for i in range(count):
        first, last = FIRST[i % len(FIRST)], surname(i // len(FIRST))
        out.append(
            {
                "full_name": f"{first} {last}",
                "email": f"{first.lower()}.{last.lower()}{i}@example.com",
                "phone": f"+1 415 {200 + i // 10000:03d} {i % 10000:04d}",
                "account": {"account_id": f"AC-{100000 + i}"},
            }
        )
    return out


def text_for(person: dict[str, Any], index: int) -> str:
    """A ~300-character reply naming ``person`` three times (name, email, phone/account)."""
    return TEMPLATES[(index // 2) % len(TEMPLATES)].format(
        name=person["full_name"],
        email=person["email"],
        phone=person["phone"],
        account=person["account"]["account_id"],
    )


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    """p50, p99 and mean in milliseconds."""
    return {
        "p50_ms": round(percentile(values, 0.5) * 1000, 3),
        "p99_ms": round(percentile(values, 0.99) * 1000, 3),
        "mean_ms": round(statistics.fmean(values) * 1000, 3),
    }


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark on SQLite and (if reachable) PostgreSQL; print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=400, help="Requests per endpoint.")
    parser.add_argument("--records", type=int, default=5000, help="Customer records stored.")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only.")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "bench"))
    from api import drop_bench_schema, postgres_schema_url  # noqa: PLC0415 - bench/api.py

    work = Path(tempfile.mkdtemp(prefix="guard-bench-messages-"))
    results = {"sqlite": run(f"sqlite:///{work / 'guard.db'}", work, args.rounds, args.records)}
    url = None if args.no_postgres else postgres_schema_url()
    if url is not None:
        try:
            results["postgresql"] = run(url, work, args.rounds, args.records)
        finally:
            drop_bench_schema()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


def run(database_url: str, work: Path, rounds: int, records_count: int) -> dict[str, Any]:
    """Seed ``records_count`` customers, then alternate the two requests ``rounds`` times."""
    os.environ.update(
        {
            "GUARD_DATABASE_URL": database_url,
            "GUARD_KEYS_DIR": str(work / "keys"),
            "GUARD_AUDIT_JSONL_PATH": str(work / "audit.jsonl"),
            "GUARD_ANALYSIS_WORKERS": "2",
            "GUARD_LOG_LEVEL": "warning",
        }
    )
    sys.path.insert(0, str(ROOT))
    from fastapi.testclient import TestClient  # noqa: PLC0415 - after the environment is set

    from guard.api.app import create_app  # noqa: PLC0415
    from guard.api.services import build_services  # noqa: PLC0415
    from guard.config import get_settings  # noqa: PLC0415
    from guard.logging import configure_logging  # noqa: PLC0415
    from guard.records.schemas import RecordCreate  # noqa: PLC0415

    settings = get_settings()
    configure_logging(settings)
    services = build_services(settings)
    _, key = services.api_keys.create(name="bench", role="agent", tenant="acme")
    headers = {"Authorization": f"Bearer {key}"}
    app = create_app(services=services)
    crowd = people(records_count)
    started = time.perf_counter()
    with TestClient(app) as client:
        # the service, built on first use, stores the records (blind indexes included)
        client.post("/v1/messages/check", json={"text": "warm up"}, headers=headers)
        guard = app.state.messages
        records = guard._records  # noqa: SLF001 - the bench seeds the same service
        ids = [
            records.create(tenant="acme", data=RecordCreate(**person), only=()).id
            for person in crowd
        ]
        seeded = time.perf_counter() - started
        cases = []
        for i in range(rounds):
            own = i % len(crowd)
            about = own if i % 2 == 0 else (own + 1) % len(crowd)  # odd rounds: another's data
            cases.append((text_for(crowd[about], i), ids[own]))
        lengths = [len(t) for t, _ in cases]
        for text, customer_id in cases[:20]:  # warm-up
            client.post("/v1/redact", json={"text": text}, headers=headers)
            client.post(
                "/v1/messages/check",
                json={"text": text, "customer_id": customer_id},
                headers=headers,
            )
        redact_times: list[float] = []
        check_times: list[float] = []
        verdicts: dict[str, int] = {}
        for text, customer_id in cases:
            t0 = time.perf_counter()
            answer = client.post("/v1/redact", json={"text": text}, headers=headers)
            t1 = time.perf_counter()
            checked = client.post(
                "/v1/messages/check",
                json={"text": text, "customer_id": customer_id},
                headers=headers,
            )
            t2 = time.perf_counter()
            assert answer.status_code == 200, answer.text
            assert checked.status_code == 200, checked.text
            verdict = checked.json()["verdict"]
            verdicts[verdict] = verdicts.get(verdict, 0) + 1
            redact_times.append(t1 - t0)
            check_times.append(t2 - t1)
        steps = step_times(guard, cases)
    services.close()

    redact, check = summary(redact_times), summary(check_times)
    return {
        "records": records_count,
        "rounds": rounds,
        "text_chars_mean": round(statistics.fmean(lengths), 1),
        "seed_seconds": round(seeded, 1),
        "redact": redact,
        "check": check,
        "added_p50_ms": round(check["p50_ms"] - redact["p50_ms"], 3),
        "ratio_p50": round(check["p50_ms"] / redact["p50_ms"], 3),
        "ratio_p99": round(check["p99_ms"] / redact["p99_ms"], 3),
        "verdicts": verdicts,
        "check_steps_p50_ms": steps,
    }


def step_times(guard: Any, cases: list[tuple[str, str]]) -> dict[str, float]:  # noqa: ANN401
    """p50 (ms) of the check's own steps, called directly on the same texts."""
    from guard.messages.service import gather_candidates  # noqa: PLC0415

    timings: dict[str, list[float]] = {"gather": [], "identify": [], "tone": []}
    for text, customer_id in cases[:200]:
        entities = list(guard._analyzer.analyze(text, tenant="acme"))  # noqa: SLF001
        t0 = time.perf_counter()
        candidates = gather_candidates(text, entities)
        t1 = time.perf_counter()
        guard._identify("acme", candidates.pairs(), customer_id)  # noqa: SLF001
        t2 = time.perf_counter()
        guard.advisor.advise(text, tenant="acme", channel="message", customer_last_message=None)
        t3 = time.perf_counter()
        timings["gather"].append(t1 - t0)
        timings["identify"].append(t2 - t1)
        timings["tone"].append(t3 - t2)
    return {name: round(percentile(values, 0.5) * 1000, 3) for name, values in timings.items()}


if __name__ == "__main__":
    main()
