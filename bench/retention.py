"""Retention: records shredded per second in batches against one-by-one erasure; audit pruning.

One run, same machine, each database (the embedded SQLite file, synchronous=FULL as guard ships;
PostgreSQL when reachable), fresh scratch databases with real keys:

- **records**: three sets of ``--records`` customer records (name, email, phone, account and a
  note, each encrypted under its own data key with its associated data, blind indexes; bulk
  loaded), all last updated four years ago, so past the default ``erase_inactive_months: 36``.
  Then, timed:
  - *erase, one at a time*: ``RecordService.erase`` per record (the existing erasure path:
    its own transaction, row lock, shredding, commit);
  - *erase + audit event*: the same plus the ``records.erase`` event ``DELETE /v1/records/{id}``
    appends for each (what an operator scripting erasure over the API would cost, minus HTTP);
  - *retention run*: ``RetentionService.run`` over the third set: candidates found by query,
    legal holds checked, ``RecordService.erase_many`` per batch of ``GUARD_RETENTION_BATCH`` (500),
    the run's cursor moved in the same transaction, one audit event per batch.
  Rates are records per second; the ratio is the retention run's over the one-at-a-time erase.
- **audit**: ``--events`` sealed events (real hashes, HMACs, a signed checkpoint every 1,000)
  written "in 2015" (past ``keep_years: 6``), then a few current ones; ``RetentionService.run``
  prunes the old prefix batch by batch (each batch: scan for the end of the prefix, verify every
  event to remove, sign a seal, delete events and checkpoints, move the cursor; its audit event
  after). Its peer is the storage floor: the same rows in a plain copy of the table (same columns
  and indexes, no trigger, no chain) deleted in the same batches, one transaction each. After
  the prune, ``guard audit verify``'s walk is timed over what is left (from the seal).

Writes ``bench/results/retention.json``.

    .venv/bin/python bench/retention.py [--records 2000] [--events 100000] [--quick]
                                        [--skip-postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydantic import SecretStr
from scratch import ScratchDatabase, postgres_available, raw_table_like
from sqlalchemy import Table, delete, insert, text

from guard.audit.chain import GENESIS_HASH, canonical_json, checkpoint_payload, seal_event
from guard.audit.models import AuditEvent
from guard.audit.repository import AuditRepository
from guard.audit.service import AuditTrail
from guard.config import PROJECT_ROOT, Settings
from guard.crypto.blind_index import BlindIndexer
from guard.crypto.envelope import EnvelopeCipher
from guard.crypto.providers import load_key_provider
from guard.records.cli import NoAnalysis
from guard.records.models import STATUS_ACTIVE, CustomerRecord
from guard.records.service import RecordService, normalise_for_index
from guard.redaction.service import Redactor
from guard.storage.engine import create_engine_for, make_session_factory, session_scope
from guard.storage.migrate import upgrade_to_head
from guard.subjects.retention import RetentionService

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from guard.crypto.audit_keys import AuditKeys

RESULTS = PROJECT_ROOT / "bench" / "results" / "retention.json"
QUICK_RECORDS = 300
QUICK_EVENTS = 10_000
CHECKPOINT_EVERY = 1_000
LOAD_BATCH = 2_000
TENANT = "acme"
LONG_AGO = datetime.now(UTC) - timedelta(days=4 * 365)
IN_2015 = datetime(2015, 6, 1, tzinfo=UTC)
#: Sealed events and the checkpoints among them, a bulk insert at a time.
Batches = list[tuple[list[dict[str, Any]], list[dict[str, Any]]]]


@dataclass
class Database:
    """A fresh, migrated scratch database with its own keys, and guard's services on it."""

    backend: str
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    scratch: ScratchDatabase
    trail: AuditTrail
    records: RecordService
    cipher: EnvelopeCipher
    indexer: BlindIndexer

    @classmethod
    def open(cls, backend: str, workdir: Path) -> Database:
        """A fresh scratch database of ``backend`` in ``workdir``, migrated."""
        scratch = ScratchDatabase(backend, workdir)
        settings = Settings(
            database_url=SecretStr(scratch.url),
            keys_dir=workdir / "keys",
            var_dir=workdir,
            audit_checkpoint_events=CHECKPOINT_EVERY,
            audit_checkpoint_seconds=3600.0,
            log_level="warning",
        )
        engine = create_engine_for(settings)
        upgrade_to_head(engine)
        factory = make_session_factory(engine)
        cipher = EnvelopeCipher(load_key_provider(settings))
        indexer = BlindIndexer.from_settings(settings)
        records = RecordService(
            settings, factory, cipher, indexer, NoAnalysis(), Redactor(settings=settings)
        )
        return cls(
            backend=backend,
            settings=settings,
            engine=engine,
            factory=factory,
            scratch=scratch,
            trail=AuditTrail(settings, factory),
            records=records,
            cipher=cipher,
            indexer=indexer,
        )

    @property
    def label(self) -> str:
        """The server, e.g. ``postgresql 16.4``."""
        version = ".".join(map(str, self.engine.dialect.server_version_info or ()))
        return f"{self.engine.dialect.name} {version}"

    def retention(self) -> RetentionService:
        """A RetentionService on this database (the repository's policies)."""
        return RetentionService(self.settings, self.factory, self.trail, self.records)

    def drop(self) -> None:
        """Release the database."""
        self.trail.close()
        self.engine.dispose()
        self.scratch.drop()


# ---------------------------------------------------------------------------------- loading


def _record_row(db: Database, n: int) -> dict[str, Any]:
    """One encrypted record as RecordService.create writes it (fields, indexes, wrapped key)."""
    record_id = str(uuid.uuid4())
    data_key, wrapped = db.cipher.new_data_key(tenant=TENANT, customer=record_id)
    values = {
        "full_name": f"Customer Number{n}",
        "email": f"customer{n}@example.org",
        "phone": f"+1 415 555 {n % 10_000:04d}",
        "account": json.dumps({"account_id": f"AC-{n:06d}", "plan": "pro"}),
        "notes": f"Called about order {n}; asked for a refund to the card on file.",
    }
    values["notes_redacted"] = "Called about order <NUMBER>; asked for a refund."

    def seal(name: str, value: str) -> bytes:
        return db.cipher.encrypt_field(
            data_key,
            value,
            tenant=TENANT,
            customer=record_id,
            field=name,
            kek_version=wrapped.kek_version,
        )

    def index(kind: str, value: str) -> str:
        return db.indexer.index(tenant=TENANT, field=kind, value=normalise_for_index(kind, value))

    return {
        "id": record_id,
        "tenant": TENANT,
        "status": STATUS_ACTIVE,
        "created_at": LONG_AGO,
        "updated_at": LONG_AGO,
        "notes_written_at": LONG_AGO,
        "wrapped_key": wrapped.wrapped,
        "kek_version": wrapped.kek_version,
        "field_key_version": wrapped.kek_version,
        **{name: seal(name, value) for name, value in values.items()},
        "email_bi": index("email", values["email"]),
        "phone_bi": index("phone", values["phone"]),
        "account_id_bi": index("account_id", f"AC-{n:06d}"),
        "full_name_bi": index("full_name", values["full_name"]),
    }


def load_records(db: Database, count: int, start: int) -> list[str]:
    """Bulk-insert ``count`` inactive records; their ids."""
    table = cast("Table", CustomerRecord.__table__)
    ids: list[str] = []
    for first in range(start, start + count, LOAD_BATCH):
        rows = [_record_row(db, n) for n in range(first, min(start + count, first + LOAD_BATCH))]
        with session_scope(db.factory) as session:
            session.execute(insert(table), rows)
        ids.extend(row["id"] for row in rows)
    return ids


def sealed_events(keys: AuditKeys, count: int) -> Batches:
    """``count`` events of 2015 (a read a second), sealed; (rows, checkpoints) per batch."""
    batches: Batches = []
    prev, rows, checkpoints = GENESIS_HASH, [], []
    for seq in range(1, count + 1):
        content = {
            "ts": IN_2015 + timedelta(seconds=seq),
            "principal": f"agent-{seq % 40}",
            "role": "agent",
            "tenant": ("acme", "globex", "initech")[seq % 3],
            "action": "records.read",
            "resource": "/v1/records/{record_id}",
            "decision": "allow",
            "outcome": "success",
            "request_id": f"r{seq}",
            "customer": keys.identifier_hash("customer", f"C-{seq % 5_000}"),
            "entity_counts": canonical_json({}),
            "details": canonical_json({"fields_shown": 5}),
        }
        row = seal_event(content, seq=seq, prev_hash=prev, keys=keys)
        prev = row["hash"]
        rows.append(row)
        if seq % CHECKPOINT_EVERY == 0:
            signature = keys.sign_checkpoint(checkpoint_payload(seq, row["hash"], row["ts"]))
            checkpoints.append(
                {
                    "seq": seq,
                    "head_hash": row["hash"],
                    "ts": row["ts"],
                    "signature": signature.hex(),
                    "key_id": keys.signing_key_id,
                }
            )
        if len(rows) == LOAD_BATCH:
            batches.append((rows, checkpoints))
            rows, checkpoints = [], []
    if rows:
        batches.append((rows, checkpoints))
    return batches


def load_events(db: Database, batches: Batches) -> None:
    """Bulk-insert the sealed events and checkpoints."""
    for rows, checkpoints in batches:
        with session_scope(db.factory) as session:
            repo = AuditRepository(session)
            repo.insert_events(rows)
            for checkpoint in checkpoints:
                repo.insert_checkpoint(checkpoint)
    if db.backend == "postgresql":
        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE audit_events"))


# ------------------------------------------------------------------------------ measuring


def erase_one_by_one(db: Database, ids: list[str], *, audited: bool) -> float:
    """RecordService.erase per record (and the endpoint's audit event); seconds."""
    start = time.perf_counter()
    for record_id in ids:
        db.records.erase(tenant=TENANT, record_id=record_id)
        if audited:
            db.trail.record(
                action="records.erase",
                resource="records",
                decision="allow",
                outcome="success",
                principal="officer-1",
                role="compliance_officer",
                tenant=TENANT,
                customer=record_id,
                details={"crypto_shredded": True},
            )
    return time.perf_counter() - start


def records_case(db: Database, count: int) -> dict[str, Any]:
    """Shred ``count`` records each way; rates and ratios."""
    one = load_records(db, count, 0)
    audited = load_records(db, count, count)
    batched = load_records(db, count, 2 * count)
    del batched  # found by the run's own query
    alone = erase_one_by_one(db, one, audited=False)
    with_audit = erase_one_by_one(db, audited, audited=True)
    start = time.perf_counter()
    report = db.retention().run(started_by="bench")
    run_seconds = time.perf_counter() - start
    erased = report.total("records")
    if erased != count:
        raise RuntimeError(f"the retention run erased {erased} records, expected {count}")
    rates = {
        "erase_one_by_one": count / alone,
        "erase_and_audit_one_by_one": count / with_audit,
        "retention_run": count / run_seconds,
    }
    return {
        "records": count,
        "batch": db.settings.retention_batch,
        "batches": report.batches,
        "seconds": {
            "erase_one_by_one": alone,
            "erase_and_audit_one_by_one": with_audit,
            "retention_run": run_seconds,
        },
        "per_second": rates,
        "ratio_run_over_erase": rates["retention_run"] / rates["erase_one_by_one"],
        "ratio_run_over_erase_and_audit": rates["retention_run"]
        / rates["erase_and_audit_one_by_one"],
    }


def raw_delete(db: Database, batches: Batches, batch: int) -> float:
    """The same rows in a plain copy of audit_events, deleted in the same batches; seconds."""
    raw = raw_table_like(cast("Table", AuditEvent.__table__), "bench_raw_events", db.engine)
    for rows, _ in batches:
        with db.engine.begin() as conn:
            conn.execute(insert(raw), rows)
    last = sum(len(rows) for rows, _ in batches)
    start = time.perf_counter()
    for through in range(batch, last + batch, batch):
        with db.engine.begin() as conn:
            conn.execute(delete(raw).where(raw.c.seq <= min(through, last)))
    seconds = time.perf_counter() - start
    raw.drop(db.engine)
    return seconds


def audit_case(db: Database, count: int) -> dict[str, Any]:
    """Prune ``count`` old events; the rate against a plain DELETE, and verify afterwards."""
    batches = sealed_events(db.trail.keys, count)
    start = time.perf_counter()
    load_events(db, batches)
    load_seconds = time.perf_counter() - start
    for _ in range(3):  # today's events: the prefix ends before them
        db.trail.record(
            action="records.read", resource="records", decision="allow", outcome="success"
        )
    start = time.perf_counter()
    report = db.retention().run(started_by="bench")
    prune_seconds = time.perf_counter() - start
    pruned = report.total("audit")
    if pruned != count:
        raise RuntimeError(f"the retention run pruned {pruned} events, expected {count}")
    start = time.perf_counter()
    verified = db.trail.verify()
    verify_seconds = time.perf_counter() - start
    if not verified.ok or verified.pruned_through != count:
        raise RuntimeError(f"verification after the prune failed: {verified}")
    floor = raw_delete(db, batches, db.settings.retention_batch)
    return {
        "events": count,
        "batch": db.settings.retention_batch,
        "seals": verified.seals_checked,
        "load_seconds": load_seconds,
        "prune_seconds": prune_seconds,
        "pruned_per_second": count / prune_seconds,
        "raw_delete_seconds": floor,
        "raw_deleted_per_second": count / floor,
        "ratio_prune_over_raw_delete": (count / prune_seconds) / (count / floor),
        "verify_after": {
            "seconds": verify_seconds,
            "verified_from_seq": verified.verified_from_seq,
            "events_checked": verified.events_checked,
        },
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import version  # noqa: PLC0415

    return {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "SQLAlchemy": version("SQLAlchemy"),
        "psycopg": version("psycopg"),
        "cryptography": version("cryptography"),
    }


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2_000, help="records per path (2,000)")
    parser.add_argument("--events", type=int, default=100_000, help="audit events to prune")
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_RECORDS} records, {QUICK_EVENTS:,} events"
    )
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    records = QUICK_RECORDS if args.quick else args.records
    events = QUICK_EVENTS if args.quick else args.events
    backends = ["sqlite"]
    if args.skip_postgres:
        print("PostgreSQL skipped (--skip-postgres)")
    elif postgres_available():
        backends.append("postgresql")
    else:
        print("PostgreSQL not reachable at 127.0.0.1:5432: SQLite only")
    results: dict[str, Any] = {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": _versions(),
        "backends": {},
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="guard-bench-retention-") as tmp:
        for backend in backends:
            workdir = Path(tmp) / backend
            workdir.mkdir()
            db = Database.open(backend, workdir)
            try:
                figures: dict[str, Any] = {"label": db.label, "records": records_case(db, records)}
            finally:
                db.drop()
            db = Database.open(backend, workdir)
            try:
                figures["audit"] = audit_case(db, events)
            finally:
                db.drop()
            results["backends"][backend] = figures
            _print(backend, figures)
    results["seconds"] = time.perf_counter() - started
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    partial = RESULTS.with_suffix(".json.tmp")
    partial.write_text(json.dumps(results, indent=2) + "\n")
    partial.replace(RESULTS)
    print(f"{results['seconds']:.0f} s; results in {RESULTS.relative_to(PROJECT_ROOT)}")


def _print(backend: str, figures: dict[str, Any]) -> None:
    rec, aud = figures["records"], figures["audit"]
    rate = rec["per_second"]
    one = rate["erase_one_by_one"]
    rows = [
        ("RecordService.erase, one at a time", one, 1.0),
        ("  + its records.erase audit event", rate["erase_and_audit_one_by_one"], None),
        (f"retention run, batches of {rec['batch']}", rate["retention_run"], None),
    ]
    print(f"\n{figures['label']} ({backend})")
    print(f"  {'records shredded (' + format(rec['records'], ',') + ')':<46} {'/s':>10} {'x':>7}")
    for name, value, _ in rows:
        print(f"  {name:<46} {value:>10,.0f} {value / one:>7.1f}")
    floor = aud["raw_deleted_per_second"]
    seals = aud["seals"]
    print(f"  {'audit events pruned (' + format(aud['events'], ',') + ')':<46} {'/s':>10} {'x':>7}")
    print(f"  {'plain DELETE of a raw copy, same batches':<46} {floor:>10,.0f} {1:>7.2f}")
    label = f"retention run: verify, seal, delete ({seals} seals)"
    print(
        f"  {label:<46} {aud['pruned_per_second']:>10,.0f} {aud['pruned_per_second'] / floor:>7.2f}"
    )
    after = aud["verify_after"]
    print(
        f"  guard audit verify afterwards: {after['events_checked']} events from seq "
        f"{after['verified_from_seq']} in {after['seconds'] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
