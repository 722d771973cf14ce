"""Retention runs on SQLite and PostgreSQL: plan equals run, holds, zero periods, resume.

The data is real: records written (and their notes redacted) by RecordService with real keys,
audit events appended through the trail, a few of them written "in 2015" by setting the
writer's clock (as the audit tests do), and ages set on the rows where a test needs them old.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from guard.audit.errors import AuditStoreError
from guard.audit.service import AuditTrail
from guard.cli import main
from guard.config import PROJECT_ROOT
from guard.crypto.blind_index import BlindIndexer
from guard.crypto.envelope import EnvelopeCipher, WrappedKey
from guard.crypto.errors import IntegrityError
from guard.crypto.providers import load_key_provider
from guard.incidents.models import Incident, IncidentCustomer
from guard.records.models import STATUS_ERASED, CustomerRecord
from guard.records.schemas import RecordCreate
from guard.records.service import RecordService
from guard.redaction.reasons import reason_redactor
from guard.redaction.service import Redactor
from guard.storage.engine import session_scope
from guard.subjects.holds import HoldService
from guard.subjects.models import RetentionRun, SubjectPackage, SubjectRequest
from guard.subjects.policy import load_retention_policy
from guard.subjects.retention import (
    RetentionBusyError,
    RetentionConfirmationError,
    RetentionService,
)
from guard.subjects.worker import run_scheduler

if TYPE_CHECKING:
    from pathlib import Path

    from click.testing import Result
    from sqlalchemy.orm import Session, sessionmaker

    from guard.config import Settings
    from guard.detection.executor import AnalysisExecutor
    from guard.subjects.retention import BatchProgress, RetentionReport

POLICY = """\
version: 1
default:
  notes: {keep_days: 365}
  records: {erase_inactive_months: 36}
  audit: {keep_years: 6}
  subject_packages: {keep_days: 30}
tenants:
  globex:
    records: null
"""
NOW = datetime.now(UTC)
LONG_AGO = NOW - timedelta(days=4 * 365)
#: Written when the audit writer's clock says 2015: past every audit period here.
OLD_EVENTS = 6


class _In2015(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> _In2015:
        return cls(2015, 6, 1, 12, 0, 0, tzinfo=tz or UTC)


@dataclass
class World:
    """The services, and the ids of what each phase should (or should not) remove."""

    settings: Settings
    factory: sessionmaker[Session]
    trail: AuditTrail
    records: RecordService
    cipher: EnvelopeCipher
    policy_dir: Path
    stale: list[str]  # acme, not updated for 4 years: erased
    stale_with_notes: str  # acme, stale and old notes: erased (not re-keyed first)
    old_notes: list[str]  # acme, updated lately, notes 400 days old: notes removed
    fresh: str  # acme, recent notes: untouched
    globex_stale: str  # globex keeps records: untouched
    globex_old_notes: str  # globex, default notes period: notes removed
    expired_package: str
    live_package: str

    def service(self, **overrides: Any) -> RetentionService:
        policy = load_retention_policy(self.policy_dir / "retention.yaml")
        return RetentionService(
            self.settings, self.factory, self.trail, self.records, policy, **overrides
        )


def write_policies(directory: Path, retention_yaml: str) -> Path:
    """A copy of the repository's policies with this retention.yaml."""
    shutil.copytree(PROJECT_ROOT / "policies", directory)
    (directory / "retention.yaml").write_text(retention_yaml, encoding="utf-8")
    return directory


def age(factory: sessionmaker[Session], record_id: str, **columns: datetime) -> None:
    """Make a record look old: set its updated_at / notes_written_at."""
    with session_scope(factory) as session:
        session.execute(
            update(CustomerRecord).where(CustomerRecord.id == record_id).values(**columns)
        )


def add_package(
    factory: sessionmaker[Session], tenant: str, record_id: str, expires: datetime
) -> str:
    """A request and its (encrypted, opaque here) package, as the requests part stores them."""
    request_id, package_id = str(uuid.uuid4()), str(uuid.uuid4())
    with session_scope(factory) as session:
        session.add(
            SubjectRequest(
                id=request_id,
                tenant=tenant,
                kind="access",
                status="fulfilled",
                record_id=record_id,
                identity_check="<redacted>",
                opened_by="officer",
                received_at=NOW - timedelta(days=60),
                opened_at=NOW - timedelta(days=60),
                due_at=NOW - timedelta(days=30),
            )
        )
        session.flush()
        session.add(
            SubjectPackage(
                id=package_id,
                request_id=request_id,
                tenant=tenant,
                created_by="officer",
                created_at=expires - timedelta(days=30),
                expires_at=expires,
                archive=b"PK\x03\x04 encrypted",
                sha256="0" * 64,
                size=17,
            )
        )
    return package_id


@pytest.fixture
def world(
    db_settings: Settings,
    session_factory: sessionmaker[Session],
    analysis: AnalysisExecutor,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> World:
    settings = db_settings.model_copy(
        update={"retention_batch": 2, "policies_dir": write_policies(tmp_path / "p", POLICY)}
    )
    trail = AuditTrail(settings, session_factory)
    cipher = EnvelopeCipher(load_key_provider(settings))
    records = RecordService(
        settings,
        session_factory,
        cipher,
        BlindIndexer.from_settings(settings),
        analysis,
        Redactor(settings=settings),
    )

    def make(tenant: str, n: int, notes: str | None = None) -> str:
        data = RecordCreate(
            full_name=f"Customer Number{n}",
            email=f"customer{n}@example.org",
            phone=f"+1 415 555 01{n:02d}",
            account={"account_id": f"AC-{n:04d}"},
            notes=notes,
        )
        return records.create(tenant=tenant, data=data).id

    stale = [make("acme", n) for n in range(1, 4)]
    stale_with_notes = make("acme", 4, "Asked about invoice 4471.")
    old_notes = [make("acme", n, f"Called about order {n}; wants a refund.") for n in (5, 6)]
    fresh = make("acme", 7, "Called today about order 7.")
    globex_stale = make("globex", 8)
    globex_old_notes = make("globex", 9, "Old complaint about delivery.")
    for record_id in [*stale, stale_with_notes, globex_stale]:
        age(session_factory, record_id, updated_at=LONG_AGO)
    for record_id in [stale_with_notes, *old_notes, globex_old_notes]:
        age(session_factory, record_id, notes_written_at=NOW - timedelta(days=400))
    expired = add_package(session_factory, "acme", fresh, NOW - timedelta(days=1))
    live = add_package(session_factory, "acme", fresh, NOW + timedelta(days=20))
    with monkeypatch.context() as patched:
        patched.setattr("guard.audit.writer.datetime", _In2015)
        for n in range(OLD_EVENTS):
            trail.record(
                action="records.read",
                resource="records",
                decision="allow",
                outcome="success",
                principal="agent-1",
                tenant="acme",
                # seq 3 is about the first stale customer, seq 5 about an old-notes one
                customer={2: stale[0], 4: old_notes[1]}.get(n),
                details={"fields_shown": n},
            )
    trail.record(action="records.read", resource="records", decision="allow", outcome="success")
    return World(
        settings=settings,
        factory=session_factory,
        trail=trail,
        records=records,
        cipher=cipher,
        policy_dir=settings.policies_dir,
        stale=stale,
        stale_with_notes=stale_with_notes,
        old_notes=old_notes,
        fresh=fresh,
        globex_stale=globex_stale,
        globex_old_notes=globex_old_notes,
        expired_package=expired,
        live_package=live,
    )


def removed(report: RetentionReport) -> dict[str, Any]:
    """Per phase: the ids (sorted), counts and the audit seqs."""
    return {
        phase.key: (
            sorted(phase.removed_ids),
            phase.removed,
            phase.held,
            phase.first_seq,
            phase.through_seq,
        )
        for phase in report.phases
    }


def events(trail: AuditTrail, action: str) -> list[dict[str, Any]]:
    return trail.search_events(action=action)


# ----------------------------------------------------------------------------------------


def test_when_planned_then_run_then_the_run_removes_exactly_the_plan_and_a_rerun_nothing(
    world: World,
) -> None:
    service = world.service()
    plan = service.plan(started_by="test", as_of=NOW)
    assert plan.dry_run
    run = service.run(started_by="test", as_of=NOW)
    assert removed(run) == removed(plan)
    assert removed(plan) == {
        "acme/records": (sorted([*world.stale, world.stale_with_notes]), 4, 0, None, None),
        "acme/notes": (sorted(world.old_notes), 2, 0, None, None),
        "acme/subject_packages": ([world.expired_package], 1, 0, None, None),
        "globex/records": ([], 0, 0, None, None),
        "globex/notes": ([world.globex_old_notes], 1, 0, None, None),
        "globex/subject_packages": ([], 0, 0, None, None),
        "*/audit": ([], OLD_EVENTS, 0, 1, OLD_EVENTS),
    }
    assert next(p for p in run.phases if p.kind == "audit").stop == "retained"

    with session_scope(world.factory) as session:
        statuses = dict(session.execute(select(CustomerRecord.id, CustomerRecord.status)).all())
        packages = set(session.scalars(select(SubjectPackage.id)))
    assert {statuses[i] for i in [*world.stale, world.stale_with_notes]} == {STATUS_ERASED}
    assert {statuses[i] for i in [world.fresh, world.globex_stale, *world.old_notes]} == {"active"}
    assert packages == {world.live_package}
    report = world.trail.verify()
    assert (report.ok, report.verified_from_seq, report.pruned_through) == (True, 7, OLD_EVENTS)

    # audited with counts: one event per batch (2 rows each), and the run's own
    batches = events(world.trail, "retention.records")
    assert [e["details"]["removed"] for e in batches] == [2, 2]
    assert all(e["tenant"] == "acme" for e in batches)

    # a dry run, then another run: nothing left to remove, and no event written twice
    assert all(phase.removed == 0 for phase in service.plan(started_by="test").phases)
    again = service.run(started_by="test", as_of=NOW)
    assert again.run_id != run.run_id
    assert all(phase.removed == 0 for phase in again.phases), removed(again)
    final = [
        e for e in events(world.trail, "retention.run") if e["details"].get("run_id") == run.run_id
    ]
    assert [e["details"]["dry_run"] for e in final] == [False]
    assert (final[0]["details"]["records"], final[0]["details"]["audit_events"]) == (4, OLD_EVENTS)
    assert [e["details"]["batch"] for e in events(world.trail, "retention.records")] == [1, 2]


def test_when_notes_are_removed_then_the_rest_stays_readable_under_a_new_key(world: World) -> None:
    record_id = world.old_notes[0]
    with session_scope(world.factory) as session:
        before = session.get(CustomerRecord, record_id)
        assert before is not None
        old_notes, old_wrapped, old_version = before.notes, before.wrapped_key, before.kek_version
        updated_at = before.updated_at
    assert old_notes is not None
    assert old_wrapped is not None
    assert old_version is not None
    old_key = world.cipher.unwrap_data_key(
        WrappedKey(kek_version=old_version, wrapped=old_wrapped), tenant="acme", customer=record_id
    )
    world.service().run(started_by="test", as_of=NOW)

    record = world.records.read(tenant="acme", record_id=record_id)
    assert record.fields["notes"] is None
    assert record.fields["notes_redacted"] is None
    assert record.fields["full_name"] == "Customer Number5"
    assert record.fields["account"] == {"account_id": "AC-0005"}
    assert record.updated_at == updated_at  # removing notes is not activity
    assert world.records.search(tenant="acme", email="customer5@example.org")[0].id == record_id
    with session_scope(world.factory) as session:
        after = session.get(CustomerRecord, record_id)
        assert after is not None
        assert after.notes_written_at is None
        new_wrapped, new_version, field_version = (
            after.wrapped_key,
            after.kek_version,
            after.field_key_version,
        )
    assert new_wrapped is not None
    assert new_version is not None
    assert field_version is not None
    assert new_wrapped != old_wrapped
    # a copy of the old notes ciphertext that survived elsewhere does not open with the new key
    new_key = world.cipher.unwrap_data_key(
        WrappedKey(kek_version=new_version, wrapped=new_wrapped), tenant="acme", customer=record_id
    )

    def open_notes(key: bytes) -> str:
        return world.cipher.decrypt_field(
            key,
            old_notes,
            tenant="acme",
            customer=record_id,
            field="notes",
            kek_version=field_version,
        )

    assert "refund" in open_notes(old_key)
    with pytest.raises(IntegrityError):
        open_notes(new_key)
    # the fresh record's notes are untouched
    assert world.records.read(tenant="acme", record_id=world.fresh).fields["notes"]


def _incident(factory: sessionmaker[Session], customer_hash: str, first_seq: int) -> str:
    incident_id = str(uuid.uuid4())
    with session_scope(factory) as session:
        session.add(
            Incident(
                id=incident_id,
                number=1,
                tenant="acme",
                title="Bulk reveal",
                rule_id="bulk-reveal",
                rule_title="Bulk reveal",
                description="Bulk reveal",
                severity="high",
                status="open",
                group_key="0" * 64,
                group_values="{}",
                runbook="default",
                opened_at=NOW,
                became_aware_at=NOW,
                updated_at=NOW,
                first_event_at=NOW,
                last_event_at=NOW,
                first_seq=first_seq,
                last_seq=first_seq + 1,
                hits=1,
                entity_types="[]",
                actions="[]",
                chain_detail="not yet verified",
            )
        )
        session.flush()
        session.add(
            IncidentCustomer(
                incident_id=incident_id, customer_hash=customer_hash, first_seq=first_seq
            )
        )
    return incident_id


def test_when_holds_stand_then_retention_leaves_what_they_cover_until_released(
    world: World, analysis: AnalysisExecutor
) -> None:
    holds = HoldService(world.factory, world.records)
    redact = reason_redactor(analysis, Redactor(settings=world.settings))

    def place(scope: str, target: str) -> str:
        return holds.place(
            tenant="acme",
            scope=scope,
            target=target,
            reason="Litigation hold requested by counsel, matter 2291",
            placed_by="officer",
            redact=lambda reason, known: redact(reason, "acme", known),
        ).id

    on_customer = place("customer", world.stale[0])
    # the incident affected an old-notes customer; its evidence starts at seq 4
    incident = _incident(world.factory, world.trail.customer_hash(world.old_notes[1]), 4)
    on_incident = place("incident", incident)
    service = world.service()
    plan = service.plan(started_by="test", as_of=NOW)
    run = service.run(started_by="test", as_of=NOW)
    assert removed(run) == removed(plan)
    got = removed(run)
    assert got["acme/records"][0] == sorted([*world.stale[1:], world.stale_with_notes])
    assert got["acme/records"][2] == 1  # held
    assert got["acme/notes"][0] == [world.old_notes[0]]
    assert got["acme/notes"][2] == 1
    # seq 3 is about the held customer: the prefix ends before it
    assert got["*/audit"][3:] == (1, 2)
    assert next(p for p in run.phases if p.kind == "audit").stop == "held-customer"

    holds.release(tenant="acme", hold_id=on_customer, released_by="officer")
    run = service.run(started_by="test", as_of=NOW)
    got = removed(run)
    assert got["acme/records"][:3] == ([world.stale[0]], 1, 0)
    assert got["acme/notes"][2] == 1  # the incident hold still stands
    assert got["*/audit"][3:] == (3, 3)  # the incident's evidence starts at seq 4
    assert next(p for p in run.phases if p.kind == "audit").stop == "held-incident"

    holds.release(tenant="acme", hold_id=on_incident, released_by="officer")
    got = removed(service.run(started_by="test", as_of=NOW))
    assert got["acme/notes"][:3] == ([world.old_notes[1]], 1, 0)
    assert got["*/audit"][3:] == (4, OLD_EVENTS)
    assert world.trail.verify().ok


def cli(world: World, *args: str) -> Result:
    env = {
        "GUARD_KEYS_DIR": str(world.settings.keys_dir),
        "GUARD_VAR_DIR": str(world.settings.var_dir),
        "GUARD_DATABASE_URL": world.settings.sqlalchemy_url,
        "GUARD_POLICIES_DIR": str(world.policy_dir),
        "GUARD_RETENTION_BATCH": "2",
        "GUARD_LOG_LEVEL": "error",
    }
    return CliRunner().invoke(main, ["retention", *args], env=env)


def active_records(world: World) -> int:
    with session_scope(world.factory) as session:
        return len(
            session.scalars(
                select(CustomerRecord.id).where(CustomerRecord.status == "active")
            ).all()
        )


def test_when_a_period_is_zero_then_a_run_needs_confirmation_and_the_scheduler_skips_it(
    world: World,
) -> None:
    (world.policy_dir / "retention.yaml").write_text(
        POLICY.replace("erase_inactive_months: 36", "erase_inactive_months: 0"), encoding="utf-8"
    )
    active = active_records(world)
    with pytest.raises(RetentionConfirmationError, match="default/records"):
        world.service().run(started_by="test")
    result = cli(world, "run")
    assert result.exit_code == 1, result.output
    assert "zero periods" in result.output
    assert "--confirm-erase-all" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert active_records(world) == active
    refusals = [e for e in events(world.trail, "retention.run") if e["outcome"] == "failure"]
    assert [e["details"]["reason"] for e in refusals] == ["confirmation-required"] * 2

    # a dry run shows what the confirmed run would remove, and says it needs the flag
    result = cli(world, "run", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "acme             records" in result.output
    assert "a run needs --confirm-erase-all" in result.output
    assert active_records(world) == active

    # the scheduler's pass: the zero rule is skipped (logged and audited), the rest applies
    stop = threading.Event()
    passes: list[RetentionRun] = []

    def watch() -> None:
        while not stop.is_set():
            with session_scope(world.factory) as session:
                finished = session.scalars(
                    select(RetentionRun).where(RetentionRun.status == "finished")
                ).all()
            if finished:
                passes.extend(finished)
                stop.set()
            stop.wait(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    run_scheduler(world.settings.model_copy(update={"retention_interval_seconds": 3600}), stop)
    watcher.join()
    assert [run.started_by for run in passes] == ["scheduler"]
    skip = events(world.trail, "retention.skip")
    assert [(e["principal"], e["details"]["rules"]) for e in skip] == [
        ("scheduler", "default/records")
    ]
    assert active_records(world) == active  # no record erased ...
    notes = events(world.trail, "retention.notes")
    assert sum(e["details"]["removed"] for e in notes) == 4  # ... but the notes went

    result = cli(world, "run", "--confirm-erase-all")
    assert result.exit_code == 0, result.output
    assert active_records(world) == 2  # globex keeps its records (null); acme: all erased
    assert "records" in result.output


def test_when_a_run_crashes_then_the_next_one_resumes_it_and_removes_nothing_twice(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = world.service()
    plan = service.plan(started_by="test", as_of=NOW)

    def crash(batch: BatchProgress) -> None:
        raise RuntimeError(f"killed after batch {batch.batch}")

    with pytest.raises(RuntimeError, match="killed after batch 1"):
        service.run(started_by="test", as_of=NOW, on_batch=crash)
    with session_scope(world.factory) as session:
        run = session.scalars(select(RetentionRun)).one()
        run_id, status, as_of = run.id, run.status, run.as_of
    assert status == "failed"
    stale = [*world.stale, world.stale_with_notes]
    assert sum(1 for i in stale if world_status(world, i) == STATUS_ERASED) == 2

    # the dry run now plans the resumption: what is left of the interrupted run
    left = service.plan(started_by="test")
    assert (left.run_id, left.resumed, left.as_of) == (run_id, True, as_of)
    assert left.total("records") == plan.total("records") - 2

    # a second crash, this time between a batch's commit and its audit event
    record = world.trail.record

    def audit_down(**fields: Any) -> int:
        if fields["action"] == "retention.notes":
            raise AuditStoreError("the audit trail could not record the event")
        return record(**fields)

    monkeypatch.setattr(world.trail, "record", audit_down)
    with pytest.raises(AuditStoreError):
        service.run(started_by="test")
    monkeypatch.setattr(world.trail, "record", record)
    assert not [
        e for e in events(world.trail, "retention.notes") if e["details"]["run_id"] == run_id
    ]

    busy: list[str] = []

    def try_another(batch: BatchProgress) -> None:
        if not busy and batch.removed:
            with pytest.raises(RetentionBusyError) as info:
                world.service().run(started_by="someone else")
            busy.append(info.value.message)

    final = service.run(started_by="test", on_batch=try_another)
    assert (final.run_id, final.resumed, final.as_of) == (run_id, True, as_of)
    assert len(busy) == 1
    assert "is in progress" in busy[0]
    # totals over the three attempts are the plan's, and each id went once
    assert {p.key: p.removed for p in final.phases} == {p.key: p.removed for p in plan.phases}
    records = events(world.trail, "retention.records")
    assert sum(e["details"]["removed"] for e in records if e["details"]["run_id"] == run_id) == 4
    notes = [e for e in events(world.trail, "retention.notes") if e["details"]["run_id"] == run_id]
    # the lost event was written when the run was claimed again, and once only
    batches = [e["details"]["batch"] for e in notes]
    assert len(batches) == len(set(batches)) == 2
    assert sum(e["details"]["removed"] for e in notes) == 3
    outcomes = [
        e["outcome"]
        for e in events(world.trail, "retention.run")
        if e["details"].get("run_id") == run_id and not e["details"]["dry_run"]
    ]
    assert outcomes == ["failure", "failure", "success"]
    assert world.trail.verify().ok


def world_status(world: World, record_id: str) -> str:
    with session_scope(world.factory) as session:
        row = session.get(CustomerRecord, record_id)
        assert row is not None
        return row.status


def test_when_the_cli_lists_schedule_runs_and_holds_then_it_reads_and_audits(world: World) -> None:
    result = cli(world, "schedule", "--tenant", "globex")
    assert result.exit_code == 0, result.output
    assert "records           kept until erased" in result.output
    assert "notes             365 days" in result.output
    result = cli(world, "run")
    assert result.exit_code == 0, result.output
    assert "4 erased" in result.output
    result = cli(world, "runs")
    assert result.exit_code == 0, result.output
    assert "finished" in result.output
    assert "acme/records 4" in result.output
    result = cli(world, "holds", "list")
    assert (result.exit_code, result.output.strip()) == (0, "no legal holds")
    result = cli(world, "holds", "release", str(uuid.uuid4()))
    assert result.exit_code == 1
    assert "no legal hold with this id" in result.output
    actions = {e["action"] for e in world.trail.search_events(principal="cli", limit=100)}
    assert {"retention.schedule", "retention.run", "retention.runs", "retention.holds"} <= actions
    failed = events(world.trail, "retention.release")
    assert [(e["outcome"], e["details"]["reason"]) for e in failed] == [("failure", "not-found")]
