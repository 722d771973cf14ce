"""The access package of a customer with 10,000 audit events, against fetching them raw.

One run, same machine, each database (the embedded SQLite file; PostgreSQL when reachable): a
scratch database gets ``--customers`` customer records (real envelope encryption and blind
indexes, notes detected and redacted) and ``--events`` sealed audit events about them (real
hashes and HMACs, bulk-inserted as ``bench/incidents.py`` loads its desk), of which
``--customer-events`` (10,000) concern one customer: agents reading, searching and updating
their record, checking messages to them, calling tools, supervisors revealing it with a stated
reason. An officer opens an access request for that customer (``SubjectService.open``), then:

- **package**: ``SubjectService.package``, what ``POST /v1/subjects/requests/{id}/package``
  does minus HTTP: decrypt the record, stream the customer's events twice (JSON and CSV) in
  keyset batches, the incidents and requests, the cover letter (made from the policies, timed
  apart as well), every file written into an AES-256 (WinZip AE-2) ZIP in memory, the archive
  stored, one audit event;
- **peer**: the raw primitive: the very same events fetched in one query (the columns the
  package reads, by the customer's keyed hash, in seq order) and ``json.dumps``-ed, no package,
  no encryption, no storage; guard's time is given as a ratio of it.

Each is run ``--repeat`` times (interleaved, after one untimed warm-up) and the median
reported. Keys live in a temporary directory. Results: ``bench/results/subjects.json``.

    .venv/bin/python bench/subjects.py [--events 50000] [--customer-events 10000]
                                       [--customers 50] [--repeat 5] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy
from pydantic import SecretStr
from scratch import POSTGRES_URL, ScratchDatabase, postgres_available
from sqlalchemy import or_, select

from guard.api.services import build_services
from guard.audit.chain import GENESIS_HASH, canonical_json, seal_event
from guard.audit.models import AuditEvent
from guard.audit.repository import AuditRepository
from guard.config import PROJECT_ROOT, Settings
from guard.detection.engine import Detector
from guard.logging import configure_logging
from guard.records.endpoints import build_record_service
from guard.records.schemas import RecordCreate
from guard.storage.engine import session_scope
from guard.subjects.letter import LetterContext, cover_letter
from guard.subjects.service import Actor, SubjectService, reason_redactor

if TYPE_CHECKING:
    from collections.abc import Iterator

    from guard.api.services import Services
    from guard.records.service import RecordService

RESULTS = PROJECT_ROOT / "bench" / "results" / "subjects.json"
TENANT = "acme"
SEED = 20240611
BULK_BATCH = 5_000
#: What staff do to a customer's record, and how often (weights).
ACTIONS: tuple[tuple[str, str, int], ...] = (
    ("records.read", "agent", 50),
    ("records.search", "agent", 15),
    ("message.check", "agent", 12),
    ("tool.call", "agent", 10),
    ("records.update", "agent", 8),
    ("records.reveal", "supervisor", 3),
    ("records.read", "supervisor", 2),
)
REASONS = (
    "refund dispute escalated by the team lead",
    "address change confirmed by phone",
    "chargeback investigation",
)


def _customer(rng: random.Random, n: int) -> RecordCreate:
    return RecordCreate(
        full_name=f"Customer {n:04d} Example",
        email=f"customer{n:04d}@example.org",
        phone=f"+44 20 7946 {rng.randrange(10_000):04d}",
        postal_address=f"{n} Bench Street, Testford TF1 {n % 9}AB",
        account={"account_id": f"AC-{100_000 + n}", "plan": rng.choice(("basic", "pro"))},
        notes=f"Customer {n:04d} Example called about order {rng.randrange(10**5)}; "
        f"call back on +44 20 7946 {rng.randrange(10_000):04d}.",
    )


def _content(
    rng: random.Random, ts: datetime, customer_hash: str, staff: list[str]
) -> dict[str, Any]:
    action, role, _ = rng.choices(ACTIONS, weights=[w for *_, w in ACTIONS])[0]
    details: dict[str, Any] = {}
    if action == "records.reveal":
        details["reason"] = rng.choice(REASONS)
    elif action == "records.read":
        details["fields_shown"] = rng.randrange(3, 9)
    return {
        "ts": ts,
        "principal": rng.choice(staff),
        "role": role,
        "tenant": TENANT,
        "action": action,
        "resource": "records",
        "decision": "allow",
        "outcome": "success",
        "request_id": uuid.UUID(int=rng.getrandbits(128)).hex,
        "customer": customer_hash,
        "entity_counts": canonical_json({}),
        "details": canonical_json(details),
    }


def _sealed(
    services: Services, hashes: list[str], target: str, args: argparse.Namespace
) -> Iterator[list[dict[str, Any]]]:
    """``args.events`` sealed events over a year, ``args.customer_events`` about ``target``."""
    rng = random.Random(SEED)  # noqa: S311 - a reproducible desk, not a secret
    keys = services.audit.keys
    staff = [uuid.UUID(int=rng.getrandbits(128)).hex for _ in range(40)]
    others = [h for h in hashes if h != target]
    about_target = set(rng.sample(range(args.events), args.customer_events))
    start = datetime.now(UTC) - timedelta(days=365)
    step = timedelta(days=365) / args.events
    prev = GENESIS_HASH
    batch: list[dict[str, Any]] = []
    for seq in range(1, args.events + 1):
        customer = target if seq - 1 in about_target else rng.choice(others)
        content = _content(rng, start + step * seq, customer, staff)
        row = seal_event(content, seq=seq, prev_hash=prev, keys=keys)
        prev = row["hash"]
        batch.append(row)
        if len(batch) == BULK_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _load(services: Services, records: RecordService, args: argparse.Namespace) -> str:
    """Customers and their events; the id of the customer with ``--customer-events``."""
    rng = random.Random(SEED)  # noqa: S311 - reproducible customers, not a secret
    ids = [records.create(tenant=TENANT, data=_customer(rng, n)).id for n in range(args.customers)]
    hashes = [services.audit.customer_hash(record_id) for record_id in ids]
    for batch in _sealed(services, hashes, hashes[0], args):
        with session_scope(services.session_factory) as session:
            AuditRepository(session).insert_events(batch)
    if services.engine.dialect.name == "postgresql":
        with services.engine.begin() as conn:
            conn.execute(sqlalchemy.text("ANALYZE audit_events"))
    return ids[0]


def _peer(services: Services, customer_hash: str) -> tuple[float, int, int]:
    """The same events fetched raw and JSON-dumped: (seconds, events, bytes)."""
    started = time.perf_counter()
    with services.session_factory() as session:
        rows = session.execute(
            select(
                AuditEvent.seq,
                AuditEvent.ts,
                AuditEvent.principal,
                AuditEvent.role,
                AuditEvent.action,
                AuditEvent.decision,
                AuditEvent.outcome,
                AuditEvent.details,
            )
            .where(
                AuditEvent.customer == customer_hash,
                or_(AuditEvent.tenant == TENANT, AuditEvent.tenant.is_(None)),
            )
            .order_by(AuditEvent.seq)
        ).all()
        text = json.dumps([dict(row._mapping) for row in rows], default=str)  # noqa: SLF001 - Row's public mapping
    return time.perf_counter() - started, len(rows), len(text.encode())


def run_backend(
    backend: str, workdir: Path, detector: Detector, args: argparse.Namespace
) -> dict[str, Any]:
    """Load one database, then time the package and its peer, interleaved."""
    scratch = ScratchDatabase(backend, workdir)
    settings = Settings(
        database_url=SecretStr(scratch.url),
        keys_dir=workdir / "keys",
        var_dir=workdir,
        audit_checkpoint_events=1_000_000,
        audit_checkpoint_seconds=86_400.0,
    )
    services = build_services(settings, detector=detector)
    try:
        records = build_record_service(services)
        started = time.perf_counter()
        record_id = _load(services, records, args)
        load_seconds = time.perf_counter() - started
        letter_times: list[float] = []

        def timed_letter(letter_settings: Settings, context: LetterContext) -> str:
            started = time.perf_counter()
            try:
                return cover_letter(letter_settings, context)
            finally:
                letter_times.append(time.perf_counter() - started)

        subjects = SubjectService(
            settings=settings,
            session_factory=services.session_factory,
            records=records,
            audit=services.audit,
            redact=reason_redactor(services.analysis, services.redactor),
            letter=timed_letter,
        )
        officer = Actor(principal="bench-officer", tenant=TENANT, role="compliance_officer")
        request = subjects.open(
            actor=officer,
            kind="access",
            record_id=record_id,
            identity_check="answered the security questions on file",
        )
        customer_hash = services.audit.customer_hash(record_id)
        subjects.package(actor=officer, request_id=request.id)  # warm-up
        _peer(services, customer_hash)
        letter_times.clear()
        package_times: list[float] = []
        peer_times: list[float] = []
        made = None
        for _ in range(args.repeat):
            started = time.perf_counter()
            made = subjects.package(actor=officer, request_id=request.id)
            package_times.append(time.perf_counter() - started)
            seconds, peer_events, peer_bytes = _peer(services, customer_hash)
            peer_times.append(seconds)
        assert made is not None  # repeat >= 1
        package = statistics.median(package_times)
        peer = statistics.median(peer_times)
        return {
            "database": f"{services.engine.dialect.name} "
            + ".".join(map(str, services.engine.dialect.server_version_info or ())),
            "load_seconds": round(load_seconds, 2),
            "events_in_package": made.built.audit_events,
            "peer_events": peer_events,
            "archive_bytes": made.built.size,
            "clear_bytes": sum(f.size for f in made.built.files),
            "peer_json_bytes": peer_bytes,
            "package_seconds": round(package, 4),
            "package_seconds_all": [round(t, 4) for t in package_times],
            "letter_seconds": round(statistics.median(letter_times), 4),
            "peer_seconds": round(peer, 4),
            "peer_seconds_all": [round(t, 4) for t in peer_times],
            "ratio_package_to_peer": round(package / peer, 1),
            "events_per_second": round(made.built.audit_events / package),
        }
    finally:
        services.close()
        scratch.drop()


def report(results: dict[str, Any]) -> None:
    """The table."""
    backends: dict[str, dict[str, Any]] = results["backends"]
    names = list(backends)
    rows = [
        ("database", "database", "{}"),
        ("audit events in the package", "events_in_package", "{:,}"),
        ("package: build + encrypt + store (median)", "package_seconds", "{:.3f} s"),
        ("  events per second", "events_per_second", "{:,}"),
        ("  of which the cover letter", "letter_seconds", "{:.3f} s"),
        ("peer: fetch + json.dumps (median)", "peer_seconds", "{:.3f} s"),
        ("package / peer", "ratio_package_to_peer", "{}x"),
        ("archive (encrypted) bytes", "archive_bytes", "{:,}"),
        ("files in clear, bytes", "clear_bytes", "{:,}"),
        ("peer JSON bytes", "peer_json_bytes", "{:,}"),
        ("load (customers + events)", "load_seconds", "{} s"),
    ]
    width = max(len(label) for label, *_ in rows)
    print()
    print(f"{'':<{width}}  " + "  ".join(f"{name:>22}" for name in names))
    for label, key, fmt in rows:
        cells = [fmt.format(backends[name][key]) for name in names]
        print(f"{label:<{width}}  " + "  ".join(f"{cell:>22}" for cell in cells))


def main() -> None:
    """Run the benchmark, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000, help="audit events in all")
    parser.add_argument("--customer-events", type=int, default=10_000, help="about the one")
    parser.add_argument("--customers", type=int, default=50, help="customer records")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each")
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to write the results")
    args = parser.parse_args()
    if not 0 < args.customer_events <= args.events or args.customers < 2 or args.repeat < 1:
        parser.error("need 0 < --customer-events <= --events, --customers >= 2, --repeat >= 1")

    backends = ["sqlite"]
    if not args.skip_postgres:
        if postgres_available():
            backends.append("postgresql")
        else:
            print(f"PostgreSQL at {POSTGRES_URL} not reachable: SQLite only")
    started = time.perf_counter()
    results: dict[str, Any] = {
        "machine": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "parameters": {
            "events": args.events,
            "customer_events": args.customer_events,
            "customers": args.customers,
            "repeat": args.repeat,
            "tenant": TENANT,
        },
        "backends": {},
    }
    with tempfile.TemporaryDirectory(prefix="guard-bench-subjects-") as tmp:
        workdir = Path(tmp)
        base = Settings(keys_dir=workdir / "keys", var_dir=workdir, log_level="warning")
        configure_logging(base)  # the detector's per-text debug lines would bury the table
        detector = Detector(settings=base)
        for backend in backends:
            print(f"{backend} ...", flush=True)
            results["backends"][backend] = run_backend(backend, workdir, detector, args)
    results["run_seconds"] = round(time.perf_counter() - started, 1)
    report(results)
    path: Path = args.json
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    tmp_path.replace(path)
    shown = path.resolve()
    if shown.is_relative_to(PROJECT_ROOT):
        shown = shown.relative_to(PROJECT_ROOT)
    print(f"\nresults written to {shown} ({results['run_seconds']} s)")


if __name__ == "__main__":
    main()
