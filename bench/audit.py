"""Audit trail: durable appends per second against a raw INSERT peer, and verify speed.

One run, same machine, each database (the embedded SQLite file; PostgreSQL when reachable):
- appends: ``AuditTrail.record`` one at a time, each in its own committed transaction (lock,
  read head, hash, HMAC, insert; a signed checkpoint every 1000 events);
- peer: the raw INSERT of the same row into an unchained copy of the table, one committed
  transaction each: what durability alone costs; the ratio is chained / raw;
- verify: a valid chain of ``--events`` events (bulk-inserted through the repository with real
  hashes, HMACs and signed checkpoints), then ``verify`` over all of it, in events/second.

Writes ``bench/results/audit.json``.

    .venv/bin/python bench/audit.py [--events 1000000] [--quick] [--appends 500]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydantic import SecretStr
from scratch import ScratchDatabase, postgres_available, raw_table_like
from sqlalchemy import Table, insert

from guard.audit.chain import GENESIS_HASH, canonical_json, checkpoint_payload, seal_event
from guard.audit.models import AuditEvent
from guard.audit.repository import AuditRepository
from guard.audit.service import AuditTrail
from guard.audit.verify import verify_chain
from guard.config import PROJECT_ROOT, Settings
from guard.crypto.audit_keys import AuditKeys
from guard.storage.engine import create_engine_for, make_session_factory, session_scope
from guard.storage.migrate import upgrade_to_head

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import Engine

RESULTS = PROJECT_ROOT / "bench" / "results" / "audit.json"
BULK_BATCH = 10_000
CHECKPOINT_EVERY = 1000


class Database:
    """A fresh SQLite file or PostgreSQL schema, migrated, dropped afterwards."""

    def __init__(self, backend: str, workdir: Path) -> None:
        self.backend = backend
        self.scratch = ScratchDatabase(backend, workdir)
        url = self.scratch.url
        self.settings = Settings(
            database_url=SecretStr(url),
            keys_dir=workdir / "keys",
            var_dir=workdir,
            audit_checkpoint_events=CHECKPOINT_EVERY,
            audit_checkpoint_seconds=3600.0,
        )
        self.engine = create_engine_for(self.settings)
        upgrade_to_head(self.engine)
        self.factory = make_session_factory(self.engine)

    def drop(self) -> None:
        """Release the database."""
        self.engine.dispose()
        self.scratch.drop()


def _event_fields(i: int) -> dict[str, Any]:
    return {
        "action": "redact",
        "resource": "text",
        "decision": "allow" if i % 7 else "deny",
        "outcome": "success",
        "principal": f"agent-{i % 50}",
        "role": "agent",
        "tenant": "acme",
        "request_id": f"req-{i}",
        "entity_counts": {"EMAIL_ADDRESS": 1, "PERSON": 2},
        "customer": f"C-{i % 1000}",
        "details": {"chars": 240, "blocked": False},
    }


def measure_appends(db: Database, keys: AuditKeys, count: int) -> dict[str, float]:
    """Chained appends/s and raw-INSERT appends/s, each durable (one commit per event)."""
    trail = AuditTrail(db.settings, db.factory, keys)
    for i in range(10):  # warm up: connections, prepared statements, the signing key
        trail.record(**_event_fields(i))
    start = time.perf_counter()
    for i in range(count):
        trail.record(**_event_fields(i))
    chained = count / (time.perf_counter() - start)

    # Same columns and indexed columns as audit_events, no chain.
    raw_table = raw_table_like(cast("Table", AuditEvent.__table__), "bench_raw_events", db.engine)
    row = seal_event(_content(0, keys, datetime.now(UTC)), seq=1, prev_hash=GENESIS_HASH, keys=keys)
    start = time.perf_counter()
    for i in range(count):
        with session_scope(db.factory) as session:
            session.execute(insert(raw_table), [{**row, "seq": i + 1, "ts": datetime.now(UTC)}])
    raw = count / (time.perf_counter() - start)
    return {"chained_per_s": chained, "raw_insert_per_s": raw, "ratio": chained / raw}


def _content(i: int, keys: AuditKeys, ts: datetime) -> dict[str, Any]:
    fields = _event_fields(i)
    return {
        **fields,
        "ts": ts,
        "customer": keys.identifier_hash("customer", fields["customer"]),
        "entity_counts": canonical_json(fields["entity_counts"]),
        "details": canonical_json(fields["details"]),
    }


def _chain_rows(count: int, keys: AuditKeys) -> Iterator[tuple[list[dict[str, Any]], list[Any]]]:
    start = datetime.now(UTC) - timedelta(seconds=count)
    prev = GENESIS_HASH
    rows: list[dict[str, Any]] = []
    checkpoints: list[dict[str, Any]] = []
    for i in range(count):
        seq = i + 1
        row = seal_event(
            _content(i, keys, start + timedelta(microseconds=seq * 1000)),
            seq=seq,
            prev_hash=prev,
            keys=keys,
        )
        prev = row["hash"]
        rows.append(row)
        if seq % CHECKPOINT_EVERY == 0:
            ts = row["ts"]
            signature = keys.sign_checkpoint(checkpoint_payload(seq, prev, ts))
            checkpoints.append(
                {
                    "seq": seq,
                    "head_hash": prev,
                    "ts": ts,
                    "signature": signature.hex(),
                    "key_id": keys.signing_key_id,
                }
            )
        if len(rows) == BULK_BATCH:
            yield rows, checkpoints
            rows, checkpoints = [], []
    if rows:
        yield rows, checkpoints


def measure_verify(db: Database, keys: AuditKeys, count: int) -> dict[str, float]:
    """Bulk-load a valid chain of ``count`` events, then time verify over it."""
    start = time.perf_counter()
    for rows, checkpoints in _chain_rows(count, keys):
        with session_scope(db.factory) as session:
            repo = AuditRepository(session)
            repo.insert_events(rows)
            for checkpoint in checkpoints:
                repo.insert_checkpoint(checkpoint)
    load_seconds = time.perf_counter() - start
    start = time.perf_counter()
    report = verify_chain(db.factory, keys)
    seconds = time.perf_counter() - start
    assert report.ok, report
    assert report.events_checked == count
    return {
        "events": count,
        "load_seconds": load_seconds,
        "verify_seconds": seconds,
        "verify_events_per_s": count / seconds,
    }


def _write_results(results: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(RESULTS)


def _engine_label(engine: Engine) -> str:
    return f"{engine.dialect.name} {'.'.join(map(str, engine.dialect.server_version_info or ()))}"


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to verify")
    parser.add_argument("--appends", type=int, default=500, help="appends to time")
    parser.add_argument("--quick", action="store_true", help="20,000 events, 200 appends")
    args = parser.parse_args()
    events = 20_000 if args.quick else args.events
    appends = 200 if args.quick else args.appends
    backends = ["sqlite"] + (["postgresql"] if postgres_available() else [])
    results: dict[str, Any] = {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "backends": {},
    }
    with tempfile.TemporaryDirectory(prefix="guard-bench-audit-") as tmp:
        workdir = Path(tmp)
        for backend in backends:
            db = Database(backend, workdir)
            keys = AuditKeys.from_settings(db.settings)
            try:
                label = _engine_label(db.engine)
                appended = measure_appends(db, keys, appends)
            finally:
                db.drop()
            db = Database(backend, workdir)
            try:
                verified = measure_verify(db, keys, events)
            finally:
                db.drop()
            results["backends"][backend] = {"server": label, **appended, **verified}
            print(
                f"{backend:10s} appends: {appended['chained_per_s']:8.0f}/s chained, "
                f"{appended['raw_insert_per_s']:8.0f}/s raw INSERT peer "
                f"(ratio {appended['ratio']:.2f}); verify {verified['events']:,} events in "
                f"{verified['verify_seconds']:.1f} s "
                f"({verified['verify_events_per_s']:,.0f} events/s; "
                f"bulk load {verified['load_seconds']:.1f} s)"
            )
    _write_results(results)
    print(f"results written to {RESULTS.relative_to(PROJECT_ROOT)}")


if __name__ == "__main__":
    main()
