"""Encrypted customer records: writes, reads and KEK rotation per second, against raw AES-GCM.

One run, same machine, same payloads (a name, email, phone, postal address, date of birth, an
account dict, an extra dict and a ~300-character note full of PII), on the embedded SQLite file
(synchronous=FULL, the default) and on PostgreSQL when reachable:

- write: what ``POST /v1/records`` does minus HTTP and authentication: the Casbin decision for
  an ``agent`` and ``records:create``, ``RecordService.create`` (new data key wrapped by the
  KEK, every field AES-256-GCM encrypted with its associated data, blind indexes, notes detected
  and redacted into a second encrypted copy, one commit), one audit event with the endpoint's
  fields (its own commit), and the agent's view of the result. Timed twice: with the notes, and
  with ``notes=None``, because spaCy NER on the notes dominates and hides everything else;
- read: what ``GET /v1/records/{id}`` does: ``records:read`` decision, ``RecordService.read``
  (unwrap the data key, decrypt every field), ``ViewPolicy.apply`` for ``agent``, audit event;
- peer: the raw primitive, ``cryptography``'s ``AESGCM``, encrypting and decrypting the same
  field values with one key and a random nonce each, no associated data, no storage; guard's
  rates are given as a fraction of it. Also the raw INSERT (one committed transaction each) and
  raw primary-key SELECT of the very ciphertext rows guard wrote, into a copy of the table with
  the same columns and indexes, to separate what storage costs from what guard adds;
- rotation: ``--rotation-records`` records in a fresh database, a new KEK version, then
  ``rewrap_all`` over ``SqlDataKeyStore``: data keys re-wrapped per second (each a
  compare-and-set in its own transaction).

Write and read rates are total throughput over ``--records`` operations after a warm-up; the
stage figures are per-operation medians. Keys live in a temporary directory: the repository's
``keys/`` is never touched. Results: ``bench/results/records.json``.

    .venv/bin/python bench/records.py [--records 500] [--rotation-records 2000]
                                      [--skip-postgres] [--json PATH]
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
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr
from scratch import POSTGRES_URL, ScratchDatabase, postgres_available, raw_table_like
from sqlalchemy import Table, insert, select

from guard.access.permissions import RECORDS_CREATE, RECORDS_READ
from guard.access.principals import Principal
from guard.api.services import Services, build_services
from guard.config import PROJECT_ROOT, Settings
from guard.crypto.envelope import EnvelopeCipher, rewrap_all
from guard.crypto.providers import load_key_provider
from guard.detection.engine import Detector
from guard.records.endpoints import RESOURCE, build_record_service
from guard.records.models import CustomerRecord
from guard.records.repository import SqlDataKeyStore
from guard.records.schemas import RecordCreate
from guard.redaction.service import Redactor
from guard.storage.engine import session_scope

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from sqlalchemy.engine import Engine

    from guard.records.service import RecordService

RESULTS = PROJECT_ROOT / "bench" / "results" / "records.json"
TENANT = "acme"
ROLE = "agent"
WARMUP = 25
PEER_REPEATS = 7
SEED = 20240611

FIRST = "Maria James Aiko Olusegun Priya Lukas Sofia Mateo Chen Fatima Noah Elena Tomasz Grace"
LAST = "Garcia Okafor Tanaka Schmidt Novak Haddad Kowalski Nguyen Rossi Lindqvist Murphy Silva"
STREETS = "Brockton Avenue,Elm Street,Harbour Road,Kingsway,Maple Drive,Station Lane,Oak Court"
CITIES = "Abington MA 02351,Leeds LS1 4DY,Portland OR 97205,Austin TX 78701,Dublin D02 X285"
PLANS = ("basic", "pro", "family", "business")
NOTES = (
    (
        "{name} called about order {order}: the parcel for {street} never arrived. Wants a "
        "replacement by Friday or a refund to the card ending {last4}. Call back on {phone} or "
        "write to {email} once the claim is filed. Identity checked with date of birth {dob}."
    ),
    (
        "{name} ({email}) asked to move the {plan} plan to a new address, {street}, from next "
        "month. Billing account {account} stays the same; refund of the last invoice approved. "
        "Prefers SMS on {phone}, never after 8 pm. Ticket {order} closed."
    ),
    (
        "Chat with {name}: card ending {last4} declined twice for order {order}. Bank confirmed "
        "no block on their side. Sent a payment link to {email} and a text to {phone}. Ships to "
        "{street}. Follow up on Monday if still unpaid."
    ),
)


# ----------------------------------------------------------------------------- payloads


@dataclass(frozen=True)
class Payload:
    """One customer record's input, with and without notes."""

    with_notes: RecordCreate
    without_notes: RecordCreate


def make_payloads(count: int, seed: int = SEED) -> list[Payload]:
    """``count`` distinct, realistic records (deterministic for a given seed)."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    first, last = FIRST.split(), LAST.split()
    streets, cities = STREETS.split(","), CITIES.split(",")
    payloads = []
    for i in range(count):
        name = f"{rng.choice(first)} {rng.choice(last)}"
        email = f"{name.lower().replace(' ', '.')}{i}@example.com"
        phone = f"+1 ({rng.randint(201, 989)}) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}"
        street = f"{rng.randint(1, 9999)} {rng.choice(streets)}, {rng.choice(cities)}"
        dob = date(rng.randint(1940, 2005), rng.randint(1, 12), rng.randint(1, 28))
        account_id = f"AC-{rng.randint(10**7, 10**8 - 1)}"
        plan = rng.choice(PLANS)
        fields: dict[str, Any] = {
            "full_name": name,
            "email": email,
            "phone": phone,
            "postal_address": street,
            "date_of_birth": dob,
            "account": {
                "account_id": account_id,
                "plan": plan,
                "since": f"{rng.randint(2010, 2024)}-{rng.randint(1, 12):02d}-01",
                "balance_cents": rng.randint(-50_000, 500_000),
                "autopay": rng.random() < 0.5,
            },
            "extra": {
                "preferred_language": rng.choice(("en", "es", "fr", "de", "pl")),
                "segment": rng.choice(("retail", "smb", "vip")),
                "marketing_opt_in": rng.random() < 0.3,
                "tags": rng.sample(["late-payer", "churn-risk", "referral", "beta", "b2b"], 2),
            },
        }
        notes = NOTES[i % len(NOTES)].format(
            name=name,
            email=email,
            phone=phone,
            street=street,
            dob=dob.isoformat(),
            plan=plan,
            account=account_id,
            order=rng.randint(10**9, 10**10 - 1),
            last4=f"{rng.randint(0, 9999):04d}",
        )
        payloads.append(
            Payload(
                with_notes=RecordCreate(**fields, notes=notes),
                without_notes=RecordCreate(**fields),
            )
        )
    return payloads


def plaintexts(data: RecordCreate) -> dict[str, str]:
    """The non-empty field values as guard serialises them before encryption (JSON for dicts)."""
    values: dict[str, str] = {}
    for name in RecordCreate.model_fields:
        value = getattr(data, name)
        if value is None:
            continue
        if isinstance(value, dict):
            value = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        elif isinstance(value, date):
            value = value.isoformat()
        values[name] = str(value)
    return values


def field_bytes(data: RecordCreate) -> list[bytes]:
    """The serialised field values as bytes, for the raw AES-GCM peer."""
    return [value.encode("utf-8") for value in plaintexts(data).values()]


# ----------------------------------------------------------------------------- databases


class Database:
    """A fresh SQLite file or PostgreSQL schema with guard's services over it, dropped after."""

    def __init__(self, backend: str, workdir: Path, detector: Detector) -> None:
        self.backend = backend
        self.scratch = ScratchDatabase(backend, workdir)
        url = self.scratch.url
        self.settings = Settings(
            database_url=SecretStr(url),
            keys_dir=workdir / "keys",
            var_dir=workdir,
            sqlite_synchronous="full",
        )
        self.services: Services = build_services(self.settings, detector=detector)
        self.records: RecordService = build_record_service(self.services)

    @property
    def engine(self) -> Engine:
        """The database engine."""
        return self.services.engine

    def drop(self) -> None:
        """Release the database."""
        self.services.engine.dispose()
        self.scratch.drop()


def _engine_label(engine: Engine) -> str:
    version = ".".join(map(str, engine.dialect.server_version_info or ()))
    return f"{engine.dialect.name} {version}"


# ----------------------------------------------------------------------------- timing


@dataclass
class Stages:
    """Per-operation seconds of each named stage, and the wall time of the whole run."""

    names: tuple[str, ...]
    samples: dict[str, list[float]] = field(default_factory=dict)
    total_seconds: float = 0.0
    count: int = 0

    def add(self, marks: Sequence[float]) -> None:
        """One operation's ``perf_counter`` marks: start, then the end of each stage."""
        for name, start, end in zip(self.names, marks, marks[1:], strict=False):
            self.samples.setdefault(name, []).append(end - start)
        self.samples.setdefault("total", []).append(marks[-1] - marks[0])

    def summary(self) -> dict[str, Any]:
        """Throughput and per-stage median / p99 in microseconds."""
        return {
            "operations": self.count,
            "per_s": self.count / self.total_seconds,
            "us_per_op": 1e6 * self.total_seconds / self.count,
            "stages_median_us": {
                name: 1e6 * statistics.median(values) for name, values in self.samples.items()
            },
            "p99_us": 1e6 * _p99(self.samples["total"]),
        }


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _principal() -> Principal:
    return Principal(id="bench-agent", name="bench", role=ROLE, tenant=TENANT, kind="api_key")


def write_one(
    db: Database, principal: Principal, data: RecordCreate, i: int, ids: list[str]
) -> list[float]:
    """One create as the endpoint does it; returns the stage marks, appends the id to ``ids``."""
    services, service = db.services, db.records
    marks = [time.perf_counter()]
    decision = services.access.enforce(principal, RECORDS_CREATE)
    assert decision.allowed, decision.reason
    marks.append(time.perf_counter())
    record = service.create(tenant=principal.tenant, data=data)
    marks.append(time.perf_counter())
    services.audit.record(
        action="records.create",
        resource=RESOURCE,
        decision="allow",
        outcome="success",
        principal=principal.id,
        role=principal.role,
        tenant=principal.tenant,
        request_id=f"bench-w-{i}",
        entity_counts=record.entity_counts,
        customer=record.id,
        details={"fields": len(data.model_fields_set)},
    )
    marks.append(time.perf_counter())
    service.views.apply(
        principal.role, record.fields, tenant=record.tenant, keys=service.redaction_keys
    )
    marks.append(time.perf_counter())
    ids.append(record.id)
    return marks


def read_one(db: Database, principal: Principal, record_id: str, i: int) -> list[float]:
    """One read as the endpoint does it; returns the stage marks."""
    services, service = db.services, db.records
    marks = [time.perf_counter()]
    decision = services.access.enforce(principal, RECORDS_READ)
    assert decision.allowed, decision.reason
    marks.append(time.perf_counter())
    record = service.read(tenant=principal.tenant, record_id=record_id)
    marks.append(time.perf_counter())
    shown = service.views.apply(
        principal.role, record.fields, tenant=record.tenant, keys=service.redaction_keys
    )
    marks.append(time.perf_counter())
    services.audit.record(
        action="records.read",
        resource=RESOURCE,
        decision="allow",
        outcome="success",
        principal=principal.id,
        role=principal.role,
        tenant=principal.tenant,
        request_id=f"bench-r-{i}",
        customer=record_id,
        details={"fields_shown": len(shown)},
    )
    marks.append(time.perf_counter())
    return marks


def timed(
    names: tuple[str, ...], count: int, warmup: int, one: Callable[[int], list[float]]
) -> dict[str, Any]:
    """``warmup`` untimed calls of ``one``, then ``count`` timed ones."""
    for i in range(warmup):
        one(i)
    stages = Stages(names=names, count=count)
    start = time.perf_counter()
    for i in range(warmup, warmup + count):
        stages.add(one(i))
    stages.total_seconds = time.perf_counter() - start
    return stages.summary()


def measure_raw_storage(db: Database, ids: list[str]) -> dict[str, float]:
    """Raw INSERT (one commit each) and raw SELECT by id of the ciphertext rows guard wrote."""
    source = cast("Table", CustomerRecord.__table__)
    raw = raw_table_like(source, "bench_raw_records", db.engine)
    with session_scope(db.services.session_factory) as session:
        rows = [
            dict(row)
            for row in session.execute(select(source).where(source.c.id.in_(ids))).mappings()
        ]
    factory = db.services.session_factory
    fresh = [{**row, "id": str(uuid.uuid4())} for row in rows]
    warm = min(WARMUP, len(fresh) // 2)
    for row in fresh[:warm]:
        with session_scope(factory) as session:
            session.execute(insert(raw), [row])
    start = time.perf_counter()
    for row in fresh[warm:]:
        with session_scope(factory) as session:
            session.execute(insert(raw), [row])
    inserted = (len(fresh) - warm) / (time.perf_counter() - start)
    start = time.perf_counter()
    for row in fresh:
        with session_scope(factory) as session:
            session.execute(select(raw).where(raw.c.id == row["id"])).one()
    selected = len(fresh) / (time.perf_counter() - start)
    return {"raw_insert_per_s": inserted, "raw_select_per_s": selected}


def measure_rotation(
    backend: str, workdir: Path, detector: Detector, payloads: list[Payload], count: int
) -> dict[str, Any]:
    """Seed ``count`` records in a fresh database, add a KEK version, time ``rewrap_all``."""
    db = Database(backend, workdir, detector)
    try:
        cipher = EnvelopeCipher(load_key_provider(db.settings))
        seed_start = time.perf_counter()
        for i in range(count):  # the real write path (no notes), untimed
            db.records.create(tenant=TENANT, data=payloads[i % len(payloads)].without_notes)
        seed_seconds = time.perf_counter() - seed_start
        target = cipher.provider.create_version()
        report = rewrap_all(
            cipher, SqlDataKeyStore(db.services.session_factory), target_version=target
        )
        assert report.complete, report
        assert report.rewrapped == count, report
        assert not report.failed, report
        # Spot check: the records still read back under the new KEK version.
        sample = db.records.list_page(tenant=TENANT, limit=5).records
        for record in sample:
            db.records.read(tenant=TENANT, record_id=record.id)
    finally:
        db.drop()
    return {
        "records": count,
        "seed_seconds": seed_seconds,
        "rewrap_seconds": report.seconds,
        "rewrapped_per_s": report.rewrapped / report.seconds,
        "passes": report.passes,
    }


# ----------------------------------------------------------------------------- peers


def measure_aesgcm(records: list[list[bytes]]) -> dict[str, float]:
    """Raw AES-256-GCM over the same values: one key, a random nonce per field, no storage."""
    aead = AESGCM(AESGCM.generate_key(bit_length=256))

    def encrypt_all() -> list[list[tuple[bytes, bytes]]]:
        out = []
        for values in records:
            sealed = []
            for value in values:
                nonce = os.urandom(12)
                sealed.append((nonce, aead.encrypt(nonce, value, None)))
            out.append(sealed)
        return out

    sealed = encrypt_all()  # warm-up, and the ciphertexts to decrypt
    encrypt_times, decrypt_times = [], []
    for _ in range(PEER_REPEATS):
        start = time.perf_counter()
        sealed = encrypt_all()
        encrypt_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        for fields in sealed:
            for nonce, ciphertext in fields:
                aead.decrypt(nonce, ciphertext, None)
        decrypt_times.append(time.perf_counter() - start)
    n = len(records)
    encrypt_us = 1e6 * statistics.median(encrypt_times) / n
    decrypt_us = 1e6 * statistics.median(decrypt_times) / n
    return {
        "fields_per_record": sum(map(len, records)) / n,
        "bytes_per_record": sum(len(v) for values in records for v in values) / n,
        "encrypt_us_per_record": encrypt_us,
        "decrypt_us_per_record": decrypt_us,
        "encrypt_records_per_s": 1e6 / encrypt_us,
        "decrypt_records_per_s": 1e6 / decrypt_us,
    }


def measure_notes(detector: Detector, settings: Settings, notes: list[str]) -> dict[str, float]:
    """Detection + redaction of the notes alone (what ``create`` spends on them)."""
    redactor = Redactor(settings=settings)
    timings = []
    for i, note in enumerate(notes):
        start = time.perf_counter()
        entities = detector.analyze(note, tenant=TENANT)
        redactor.redact_text(note, entities, channel="note", tenant=TENANT)
        if i >= WARMUP:
            timings.append(time.perf_counter() - start)
    return {
        "notes": len(timings),
        "mean_chars": statistics.mean(map(len, notes)),
        "median_us": 1e6 * statistics.median(timings),
    }


# ----------------------------------------------------------------------------- run


def run_backend(
    backend: str,
    workdir: Path,
    detector: Detector,
    payloads: list[Payload],
    args: Any,  # noqa: ANN401 - argparse
) -> dict[str, Any]:
    """Writes (with and without notes), reads, raw storage and rotation on one database."""
    count = args.records
    principal = _principal()
    db = Database(backend, workdir / backend, detector)
    try:
        label = _engine_label(db.engine)
        write_names = ("authorize", "create", "audit", "view")
        noted_ids: list[str] = []
        with_notes = timed(
            write_names,
            count,
            WARMUP,
            lambda i: write_one(db, principal, payloads[i].with_notes, i, noted_ids),
        )
        plain_ids: list[str] = []
        without_notes = timed(
            write_names,
            count,
            WARMUP,
            lambda i: write_one(db, principal, payloads[i].without_notes, i, plain_ids),
        )
        # warm up on records without notes, then read every record written with notes
        read_ids = plain_ids[:WARMUP] + noted_ids[WARMUP:]
        reads = timed(
            ("authorize", "read", "view", "audit"),
            count,
            WARMUP,
            lambda i: read_one(db, principal, read_ids[i], i),
        )
        raw = measure_raw_storage(db, noted_ids[WARMUP:])
    finally:
        db.drop()
    rotation = measure_rotation(
        backend, workdir / backend, detector, payloads, args.rotation_records
    )
    return {
        "server": label,
        "write_with_notes": with_notes,
        "write_without_notes": without_notes,
        "read_agent_view": reads,
        **raw,
        "rotation": rotation,
    }


def ratios(figures: dict[str, Any], results: dict[str, Any]) -> dict[str, float]:
    """Guard's rates as a fraction of raw AES-GCM's on the same values."""
    with_notes, no_notes = results["peer_aesgcm_with_notes"], results["peer_aesgcm_no_notes"]
    return {
        "write_with_notes": figures["write_with_notes"]["per_s"]
        / with_notes["encrypt_records_per_s"],
        "write_without_notes": figures["write_without_notes"]["per_s"]
        / no_notes["encrypt_records_per_s"],
        "read": figures["read_agent_view"]["per_s"] / with_notes["decrypt_records_per_s"],
    }


def report(results: dict[str, Any]) -> None:
    """Print the human table."""
    peer_notes, peer_plain = results["peer_aesgcm_with_notes"], results["peer_aesgcm_no_notes"]
    backends: dict[str, Any] = results["backends"]
    names = list(backends)
    width = 22
    header = f"{'':44s}" + "".join(f"{backends[b]['server']:>{width}s}" for b in names)
    print(f"\n{results['parameters']['records']} operations per figure, after a warm-up")
    print(header)
    print("-" * len(header))

    def line(label: str, cell: Callable[[dict[str, Any]], str]) -> None:
        print(f"{label:44s}" + "".join(f"{cell(backends[b]):>{width}s}" for b in names))

    def rate(key: str) -> Callable[[dict[str, Any]], str]:
        return lambda r: f"{r[key]['per_s']:,.0f}/s {r[key]['us_per_op']:,.0f} us"

    def stage_median(key: str, stage: str) -> Callable[[dict[str, Any]], str]:
        return lambda r: f"{r[key]['stages_median_us'][stage]:,.0f}"

    line("write, with notes (NER) [rec/s, us/rec]", rate("write_with_notes"))
    line("write, no notes [rec/s, us/rec]", rate("write_without_notes"))
    line("read, agent view [rec/s, us/rec]", rate("read_agent_view"))
    line("raw INSERT of the same row, 1 commit [/s]", lambda r: f"{r['raw_insert_per_s']:,.0f}/s")
    line("raw SELECT by id of the same row [/s]", lambda r: f"{r['raw_select_per_s']:,.0f}/s")
    line(
        f"rotation, {results['parameters']['rotation_records']} data keys [keys/s]",
        lambda r: f"{r['rotation']['rewrapped_per_s']:,.0f}/s",
    )
    for key, title in (
        ("write_with_notes", "write+notes"),
        ("write_without_notes", "write"),
        ("read_agent_view", "read"),
    ):
        for stage in backends[names[0]][key]["stages_median_us"]:
            line(f"  {title} median: {stage} [us]", stage_median(key, stage))
    line(
        "write+notes = x of raw AES-GCM encrypt",
        lambda r: f"{r['ratio_vs_raw_aesgcm']['write_with_notes']:.4f}x",
    )
    line(
        "write, no notes = x of raw AES-GCM encrypt",
        lambda r: f"{r['ratio_vs_raw_aesgcm']['write_without_notes']:.4f}x",
    )
    line(
        "read = x of raw AES-GCM decrypt",
        lambda r: f"{r['ratio_vs_raw_aesgcm']['read']:.4f}x",
    )
    notes = results["notes_detect_redact"]
    print(
        f"\npeer, raw AES-GCM (no storage), per record: encrypt "
        f"{peer_notes['encrypt_us_per_record']:.1f} us ({peer_notes['encrypt_records_per_s']:,.0f}"
        f"/s), decrypt {peer_notes['decrypt_us_per_record']:.1f} us "
        f"({peer_notes['decrypt_records_per_s']:,.0f}/s) with notes; encrypt "
        f"{peer_plain['encrypt_us_per_record']:.1f} us without"
    )
    print(
        f"notes detection + redaction alone: {notes['median_us']:,.0f} us per note "
        f"({notes['mean_chars']:.0f} chars)"
    )


def main() -> None:
    """Run the benchmark, print the figures, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500, help="writes and reads to time")
    parser.add_argument("--rotation-records", type=int, default=2000, help="data keys to re-wrap")
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to write the results")
    args = parser.parse_args()
    if args.records < 1 or args.rotation_records < 1:
        parser.error("--records and --rotation-records must be positive")

    backends = ["sqlite"]
    if not args.skip_postgres:
        if postgres_available():
            backends.append("postgresql")
        else:
            print(f"PostgreSQL at {POSTGRES_URL} not reachable: SQLite only")
    payloads = make_payloads(args.records + WARMUP)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "machine": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "parameters": {
            "records": args.records,
            "rotation_records": args.rotation_records,
            "warmup": WARMUP,
            "peer_repeats": PEER_REPEATS,
            "tenant": TENANT,
            "role": ROLE,
            "sqlite_synchronous": "full",
        },
        "backends": {},
    }
    with tempfile.TemporaryDirectory(prefix="guard-bench-records-") as tmp:
        workdir = Path(tmp)
        settings = Settings(keys_dir=workdir / "keys", var_dir=workdir)
        detector = Detector(settings=settings)
        notes = [p.with_notes.notes or "" for p in payloads]
        results["notes_detect_redact"] = measure_notes(detector, settings, notes)
        timed_payloads = payloads[WARMUP:]
        results["peer_aesgcm_with_notes"] = measure_aesgcm(
            [field_bytes(p.with_notes) for p in timed_payloads]
        )
        results["peer_aesgcm_no_notes"] = measure_aesgcm(
            [field_bytes(p.without_notes) for p in timed_payloads]
        )
        for backend in backends:
            print(f"{backend} ...", flush=True)
            figures = run_backend(backend, workdir, detector, payloads, args)
            figures["ratio_vs_raw_aesgcm"] = ratios(figures, results)
            results["backends"][backend] = figures
    results["run_seconds"] = time.perf_counter() - started
    report(results)
    path: Path = args.json
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    tmp_path.replace(path)
    shown = path.resolve()
    if shown.is_relative_to(PROJECT_ROOT):
        shown = shown.relative_to(PROJECT_ROOT)
    print(f"\nresults written to {shown}")


if __name__ == "__main__":
    main()
