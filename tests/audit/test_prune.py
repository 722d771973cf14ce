"""Pruning the audit trail under signed seals: verification goes on, tampering still shows."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import exc, text

from guard.audit.bundle import verify_bundle
from guard.audit.cli import audit as audit_cli
from guard.audit.errors import AuditInputError
from guard.audit.prune import (
    STOP_HEAD,
    STOP_HELD_CUSTOMER,
    STOP_HELD_INCIDENT,
    STOP_RETAINED,
    STOP_SCANNER,
    AuditPruner,
    PruneRules,
)
from guard.audit.schemas import AuditFilters
from guard.audit.verify import BrokenChainError, verify_range
from guard.storage.engine import session_scope
from tests.audit.conftest import record_events, tamper

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from guard.audit.prune import PrefixPlan, PruneSeal
    from guard.audit.service import AuditTrail
    from guard.config import Settings

EVENTS = 12
#: Every event is older than this: only holds, tenants that keep theirs, and the head stay.
ALL_PAST = PruneRules(cutoffs={}, default_cutoff=datetime(2999, 1, 1, tzinfo=UTC))


def prune(
    trail: AuditTrail, factory: sessionmaker[Session], rules: PruneRules, limit: int = 1000
) -> tuple[PrefixPlan, PruneSeal | None]:
    with session_scope(factory, write=True) as session:
        return AuditPruner(trail.keys).prune(session, rules, limit=limit)


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608 - the test's own table names


@pytest.fixture
def chain(trail: AuditTrail) -> AuditTrail:
    record_events(trail, EVENTS)
    return trail


def test_when_a_prefix_is_pruned_then_verify_passes_from_the_seal_and_says_so(
    chain: AuditTrail, factory: sessionmaker[Session], engine: Engine, audit_settings: Settings
) -> None:
    before = chain.verify()
    assert (before.ok, before.verified_from_seq, before.pruned_through) == (True, 1, None)
    plan, seal = prune(chain, factory, ALL_PAST, limit=7)
    assert seal is not None
    assert (plan.first_seq, plan.through_seq, seal.seq, seal.events_removed) == (1, 7, 7, 7)
    # the events and the checkpoint (at 5) up to the seal are gone; the one at 10 stays
    assert count(engine, "audit_events") == EVENTS - 7
    with engine.connect() as conn:
        assert conn.execute(text("SELECT seq FROM audit_checkpoints")).scalars().all() == [10]
    report = chain.verify(batch_size=2)
    assert report.ok, report
    assert (report.verified_from_seq, report.pruned_through, report.seals_checked) == (8, 7, 1)
    assert (report.events_checked, report.checkpoints_checked) == (EVENTS - 7, 1)

    # a second prune goes on from the first seal; the head (seq 12) always stays
    plan, seal = prune(chain, factory, ALL_PAST)
    assert seal is not None
    assert (plan.first_seq, seal.seq, seal.events_removed, plan.stop) == (8, 11, 4, STOP_HEAD)
    report = chain.verify()
    assert (report.ok, report.verified_from_seq, report.pruned_through) == (True, 12, 11)
    assert report.seals_checked == 2

    result = CliRunner().invoke(audit_cli, ["verify"], obj=audit_settings)
    assert result.exit_code == 0, result.output
    assert "audit chain intact: 1 events from seq 12" in result.output
    assert "events 1..11 were pruned by retention under 2 signed seals" in result.output
    last = chain.search_events(action="audit.verify")[-1]
    assert last["details"]["from_seq"] == 12


def test_when_the_seal_or_what_follows_it_is_tampered_with_then_verify_finds_it(
    chain: AuditTrail, factory: sessionmaker[Session], engine: Engine
) -> None:
    prune(chain, factory, ALL_PAST, limit=4)
    prune(chain, factory, ALL_PAST, limit=3)
    with engine.connect() as conn:
        original = dict(
            conn.execute(text("SELECT * FROM audit_prunes WHERE seq = 7")).mappings().one()
        )
    for column, value in (
        ("head_hash", "f" * 64),
        ("events_removed", 6),
        ("ts", "2020-01-01 00:00:00"),
    ):
        tamper(engine, f"UPDATE audit_prunes SET {column} = :value WHERE seq = 7", {"value": value})  # noqa: S608 - the column names are the test's own
        report = chain.verify()
        assert (report.ok, report.finding, report.first_bad_seq) == (False, "edited", 7), column
        assert report.detail == "prune seal signature invalid"
        tamper(
            engine,
            f"UPDATE audit_prunes SET {column} = :value WHERE seq = 7",  # noqa: S608 - as above
            {"value": original[column]},
        )
        assert chain.verify().ok

    tamper(engine, "UPDATE audit_events SET decision = 'deny' WHERE seq = 9")
    report = chain.verify()
    assert (report.ok, report.finding, report.first_bad_seq) == (False, "edited", 9)
    tamper(engine, "DELETE FROM audit_events WHERE seq IN (8, 9)")
    report = chain.verify()
    assert (report.ok, report.finding, report.first_bad_seq) == (False, "deleted", 8)
    # a seal deleted: the prefix it covered shows as missing
    tamper(engine, "DELETE FROM audit_prunes WHERE seq = 4")
    report = chain.verify()
    assert (report.ok, report.finding, report.first_bad_seq) == (False, "deleted", 1)


def test_when_the_prefix_was_tampered_with_then_nothing_is_pruned(
    chain: AuditTrail, factory: sessionmaker[Session], engine: Engine
) -> None:
    tamper(engine, "UPDATE audit_events SET outcome = 'failure' WHERE seq = 3")
    with pytest.raises(BrokenChainError, match=r"seq 3: edited"):
        prune(chain, factory, ALL_PAST, limit=7)
    assert count(engine, "audit_events") == EVENTS
    assert count(engine, "audit_prunes") == 0
    report = chain.verify()
    assert (report.finding, report.first_bad_seq) == ("edited", 3)


def test_when_events_must_stay_then_the_prefix_ends_before_the_first_of_them(
    trail: AuditTrail, factory: sessionmaker[Session]
) -> None:
    record_events(trail, 3, tenant="acme")
    record_events(trail, 1, tenant="globex")  # seq 4: globex keeps its events
    record_events(trail, 2, tenant="acme", customer="C-held")  # 5, 6
    record_events(trail, 4, tenant="acme")
    keep_globex = PruneRules(cutoffs={"globex": None}, default_cutoff=ALL_PAST.default_cutoff)
    plan = _plan(trail, factory, keep_globex)
    assert (plan.through_seq, plan.stop) == (3, STOP_RETAINED)

    held = PruneRules(
        cutoffs={},
        default_cutoff=ALL_PAST.default_cutoff,
        held_customers=frozenset({trail.customer_hash("C-held")}),
    )
    assert (_plan(trail, factory, held).through_seq, _plan(trail, factory, held).stop) == (
        4,
        STOP_HELD_CUSTOMER,
    )
    evidence = PruneRules(cutoffs={}, default_cutoff=ALL_PAST.default_cutoff, held_from_seq=3)
    assert (_plan(trail, factory, evidence).through_seq, _plan(trail, factory, evidence).stop) == (
        2,
        STOP_HELD_INCIDENT,
    )
    scanner = PruneRules(cutoffs={}, default_cutoff=ALL_PAST.default_cutoff, ceiling_seq=6)
    assert (_plan(trail, factory, scanner).through_seq, _plan(trail, factory, scanner).stop) == (
        6,
        STOP_SCANNER,
    )
    # an event written after the cutoff stays, and so does everything after it
    now = datetime.now(UTC)
    recent = PruneRules(cutoffs={}, default_cutoff=now.replace(year=now.year - 1))
    assert _plan(trail, factory, recent).events == 0


def _plan(trail: AuditTrail, factory: sessionmaker[Session], rules: PruneRules) -> PrefixPlan:
    with session_scope(factory) as session:
        return AuditPruner(trail.keys, scan_batch=2).plan(session, rules)


def test_when_a_bundle_meets_the_pruned_prefix_then_it_is_refused_or_carries_the_seal(
    chain: AuditTrail, factory: sessionmaker[Session]
) -> None:
    prune(chain, factory, ALL_PAST, limit=7)
    with pytest.raises(AuditInputError, match=r"events 1\.\.7 were removed by retention") as info:
        chain.evidence_bundle(first_seq=5, last_seq=10)
    assert "can start at seq 8 at the earliest" in info.value.message

    # right after the seal: the bundle carries the seal, which vouches for the first link
    data = chain.evidence_bundle(first_seq=8, last_seq=11)
    report = verify_bundle(data)
    assert report.ok, report
    assert (report.first_seq, report.last_seq, report.events_checked) == (8, 11, 4)
    files = _members(data)
    assert "previous-event.json" not in files
    assert _seal_by_hand(files) is None

    # the seal edited in transit (its checksum updated too): its signature gives it away
    seal = json.loads(files["prune-seal.json"])
    seal["head_hash"] = "0" * 64
    forged = _rezip(files, {"prune-seal.json": (json.dumps(seal) + "\n").encode()})
    report = verify_bundle(forged)
    assert (report.ok, report.bad_seq, report.problem) == (False, 7, "prune seal signature invalid")
    assert _seal_by_hand(_members(forged)) == "signature"


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _rezip(files: dict[str, bytes], changed: dict[str, bytes]) -> bytes:
    import hashlib  # noqa: PLC0415

    merged = {**files, **changed}
    manifest = json.loads(merged["manifest.json"])
    for name in changed:
        manifest["files"][name] = hashlib.sha256(merged[name]).hexdigest()
    merged["manifest.json"] = json.dumps(manifest).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in merged.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _seal_by_hand(files: dict[str, bytes]) -> str | None:
    """Follow VERIFY.txt's step 6 and the first link with json and cryptography only."""
    recipe = files["VERIFY.txt"].decode()
    found = re.search(r'payload = canonical\(\["(guard-audit-prune/v1)", (.*?)\]\)', recipe)
    assert found is not None
    names = [name.strip() for name in found.group(2).split(",")]
    assert names == ["seq", "head_hash", "ts", "events_removed"]
    seal: dict[str, Any] = json.loads(files["prune-seal.json"])
    payload = json.dumps(
        [found.group(1), *(seal[name] for name in names)], separators=(",", ":")
    ).encode()
    public = serialization.load_pem_public_key(files["audit-signing.pub"])
    assert isinstance(public, Ed25519PublicKey)
    try:
        public.verify(bytes.fromhex(seal["signature"]), payload)
    except InvalidSignature:
        return "signature"
    first = json.loads(files["events.jsonl"].decode().split("\n")[0])
    return None if first["prev_hash"] == seal["head_hash"] else "link"


def test_when_the_trail_was_pruned_then_evidence_search_and_the_scanner_still_work(
    chain: AuditTrail, factory: sessionmaker[Session], audit_settings: Settings
) -> None:
    from guard.incidents.scanner import IncidentScanner  # noqa: PLC0415

    prune(chain, factory, ALL_PAST, limit=7)
    after = verify_range(factory, chain.keys, first_seq=8, last_seq=11)
    assert after.ok, after
    into = verify_range(factory, chain.keys, first_seq=6, last_seq=9)
    assert (into.ok, into.finding, into.first_bad_seq) == (False, "pruned", 6)

    # the console's search and the incident scanner read what is left
    page = chain.search(AuditFilters(tenant="acme", since=datetime(2000, 1, 1, tzinfo=UTC)))
    assert [event.seq for event in page.events] == list(range(8, EVENTS + 1))
    scanner = IncidentScanner(settings=audit_settings, session_factory=factory, trail=chain)
    report = scanner.scan()
    assert report.events >= EVENTS - 7
    assert report.cursor >= EVENTS


def test_when_postgresql_is_asked_to_delete_without_a_seal_then_it_still_refuses(
    chain: AuditTrail, factory: sessionmaker[Session], engine: Engine
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("append-only triggers are a PostgreSQL feature; SQLite relies on verify")
    # naming a seal that does not exist lets nothing through
    with pytest.raises(exc.DBAPIError, match="append-only"):
        _as_pruner(engine, "5", "DELETE FROM audit_events WHERE seq <= 5")
    prune(chain, factory, ALL_PAST, limit=4)
    for statement in (
        "UPDATE audit_prunes SET events_removed = 1",
        "DELETE FROM audit_prunes",
        "TRUNCATE audit_prunes",
        # a seal exists at 4, but nothing beyond it may go, and no update ever
        "DELETE FROM audit_events WHERE seq = 6",
        "UPDATE audit_events SET decision = 'deny' WHERE seq = 6",
    ):
        with pytest.raises(exc.DBAPIError, match="append-only"):
            _as_pruner(engine, "4", statement)
    assert chain.verify().ok


def _as_pruner(engine: Engine, sealed: str, statement: str) -> None:
    """Run ``statement`` in a transaction that names a seal, as a prune does."""
    with engine.begin() as conn:
        conn.execute(text("SELECT set_config('guard.audit_prune', :seq, true)"), {"seq": sealed})
        conn.execute(text(statement))
