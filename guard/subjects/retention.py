"""Retention: remove what ``policies/retention.yaml`` says is past its period, resumably.

A run evaluates every rule once, at ``as_of``, and works through phases: for each tenant that
has data, ``records`` (crypto-shred records not updated for ``erase_inactive_months``, through
:meth:`RecordService.erase_many`, the erasure's own shredding), ``notes`` (drop notes written
more than ``keep_days`` ago and re-key the record, :meth:`RecordService.remove_notes_many`) and
``subject_packages`` (delete access packages past ``expires_at``); then ``audit`` (prune the
oldest prefix of the global chain under a signed seal, :mod:`guard.audit.prune`). Legal holds
(:mod:`guard.subjects.holds`) suspend retention for what they cover: such rows are skipped and
counted.

Work goes in batches of ``GUARD_RETENTION_BATCH`` rows, each one transaction that removes the
rows *and* moves the run's cursor (``retention_runs``). A crash loses at most the batch in
flight, which rolls back whole; the next ``guard retention run`` (or the scheduler) resumes the
interrupted run with its ``as_of`` and continues after its cursor, and rows already removed no
longer match, so nothing is removed twice. Each batch's audit event (``retention.records``,
``retention.notes``, ``retention.packages``, ``retention.audit``: counts only) is appended right
after the batch commits; the batch records it as pending in the cursor, so an event lost to a
crash in between is written when the run is next claimed (found missing by run id and batch).

One run at a time, across every host on the database: a run holds a lease (owner token and
expiry, in its cursor) that each batch renews and checks (compare-and-set); claiming a run is
serialised (PostgreSQL advisory lock, SQLite's write lock). A run that died keeps its lease until
it expires, then the next claim resumes it. A zero period removes everything of its kind at
once: :meth:`RetentionService.run` refuses while the policy has one unless confirmed, and the
scheduler skips those rules (and audits that it did).

``plan`` (``--dry-run``) walks the same candidate queries, hold checks and prune plan without
changing anything, so it lists exactly what a run at the same ``as_of`` removes.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import structlog
from dateutil.relativedelta import relativedelta
from sqlalchemy import delete, select, text

from guard.audit.prune import STOP_BATCH, STOP_HEAD, STOP_SCANNER, AuditPruner, PruneRules
from guard.audit.repository import AuditRepository
from guard.audit.schemas import AuditFilters
from guard.errors import GuardError, InvalidInputError
from guard.incidents.repository import IncidentRepository
from guard.records.repository import RecordRepository
from guard.storage.engine import session_scope
from guard.subjects.holds import held_customer_hashes, held_evidence_from, held_records
from guard.subjects.models import RetentionRun, SubjectPackage, SubjectRequest
from guard.subjects.policy import (
    RETENTION_FILENAME,
    RETENTION_UNITS,
    Period,
    load_retention_policy,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence

    from sqlalchemy.orm import Session, sessionmaker

    from guard.audit.service import AuditTrail
    from guard.config import Settings
    from guard.records.service import RecordService
    from guard.subjects.policy import RetentionKind, RetentionPolicy

log = structlog.get_logger(__name__)

RUNNING = "running"
FINISHED = "finished"
FAILED = "failed"
#: Kinds applied per tenant, in this order (records first: an erased record's notes are gone
#: with it, so the notes phase does not re-key records about to be shredded).
TENANT_KINDS: tuple[RetentionKind, ...] = ("records", "notes", "subject_packages")
#: The audit phase is global (the chain is one); its key in cursors and counts.
ALL_TENANTS = "*"
#: Audit action of each kind's batches, and of a whole run.
ACTIONS: dict[str, str] = {
    "records": "retention.records",
    "notes": "retention.notes",
    "subject_packages": "retention.packages",
    "audit": "retention.audit",
}
RUN_ACTION = "retention.run"
SKIP_ACTION = "retention.skip"
RESOURCE = "retention"
#: How long a run's claim lasts without a batch renewing it.
DEFAULT_LEASE_SECONDS = 300.0
#: Advisory lock class id of retention claims ("gret"); the object id is the table's oid.
_CLAIM_LOCK_CLASS = 0x67726574


class RetentionConfirmationError(InvalidInputError):
    """The policy has zero periods (they remove everything of their kind): confirm them."""

    status_code = 409
    type_slug = "confirmation-required"


class RetentionBusyError(GuardError):
    """Another retention run holds the lease (on this host or another)."""

    status_code = 409
    type_slug = "retention-busy"


def cutoff_of(period: Period, as_of: datetime) -> datetime:
    """The instant before which data of ``period`` is past it: calendar months and years.

    ``relativedelta`` keeps calendar arithmetic right (31 March minus one month is 28 or 29
    February, a leap day minus a year is 28 February).
    """
    if period.unit == "days":
        return as_of - timedelta(days=period.amount)
    if period.unit == "months":
        return as_of - relativedelta(months=period.amount)
    return as_of - relativedelta(years=period.amount)


# ----------------------------------------------------------------------------- reports


@dataclass
class PhaseReport:
    """One phase of a run or a plan: a kind in a tenant, or the audit trail."""

    tenant: str | None
    kind: RetentionKind
    period: Period | None
    cutoff: datetime | None
    #: The zero period was skipped (the scheduler never applies one).
    skipped_zero: bool = False
    #: Ids removed by this call (a plan: would be removed). Not for audit (see seqs).
    removed_ids: list[str] = field(default_factory=list)
    #: Removed over the whole run (a resumed run counts what earlier attempts removed too).
    removed: int = 0
    #: Candidates left alone because a legal hold covers them.
    held: int = 0
    #: Audit: the pruned seqs first..through (None: none), and why the prefix ends there.
    first_seq: int | None = None
    through_seq: int | None = None
    stop: str | None = None

    @property
    def key(self) -> str:
        """``tenant/kind`` (``*/audit`` for the trail): how cursors and counts name phases."""
        return f"{self.tenant or ALL_TENANTS}/{self.kind}"


@dataclass
class RetentionReport:
    """What a run removed (or a plan would remove), phase by phase."""

    dry_run: bool
    as_of: datetime
    policy_sha256: str
    run_id: str | None = None
    resumed: bool = False
    phases: list[PhaseReport] = field(default_factory=list)
    #: Zero periods in the policy (``scope/kind``), and those this call skipped.
    zero_rules: list[str] = field(default_factory=list)
    skipped_rules: list[str] = field(default_factory=list)
    batches: int = 0

    def total(self, kind: str) -> int:
        """Removed (or to remove) of one kind, every tenant."""
        return sum(phase.removed for phase in self.phases if phase.kind == kind)

    @property
    def held(self) -> int:
        """Candidates left alone for legal holds, every phase."""
        return sum(phase.held for phase in self.phases)

    def audit_details(self) -> dict[str, str | int | bool]:
        """The run's audit event details: counts, the run id, nothing else."""
        details: dict[str, str | int | bool] = {
            "dry_run": self.dry_run,
            "resumed": self.resumed,
            "records": self.total("records"),
            "notes": self.total("notes"),
            "packages": self.total("subject_packages"),
            "audit_events": self.total("audit"),
            "held": self.held,
            "batches": self.batches,
        }
        if self.run_id is not None:
            details["run_id"] = self.run_id
        return details


@dataclass(frozen=True)
class BatchProgress:
    """Handed to ``on_batch`` after each committed batch (progress lines, tests)."""

    run_id: str
    phase: str
    batch: int
    removed: int
    held: int


# ----------------------------------------------------------------------------- run state


@dataclass
class _State:
    """A run's cursor, as stored in ``retention_runs.cursor`` (JSON)."""

    owner: str | None = None
    lease_until: datetime | None = None
    #: The head of the audit trail when the run began: it never prunes later events.
    as_of_head: int = 0
    done: list[str] = field(default_factory=list)
    after: dict[str, str] = field(default_factory=dict)
    audit_first: int | None = None
    audit_through: int | None = None
    batches: int = 0
    #: The audit event of the last committed batch, until the next batch (or the end).
    pending: dict[str, Any] | None = None
    removed: dict[str, int] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, run: RetentionRun) -> _State:
        cursor = json.loads(run.cursor)
        counts = json.loads(run.counts)
        until = cursor.get("lease_until")
        return cls(
            owner=cursor.get("owner"),
            lease_until=None if until is None else datetime.fromisoformat(until),
            as_of_head=int(cursor.get("as_of_head", 0)),
            done=list(cursor.get("done", [])),
            after=dict(cursor.get("after", {})),
            audit_first=cursor.get("audit_first"),
            audit_through=cursor.get("audit_through"),
            batches=int(cursor.get("batches", 0)),
            pending=cursor.get("pending"),
            removed=dict(counts.get("removed", {})),
            held=dict(counts.get("held", {})),
        )

    def store(self, run: RetentionRun) -> None:
        run.cursor = json.dumps(
            {
                "owner": self.owner,
                "lease_until": None if self.lease_until is None else self.lease_until.isoformat(),
                "as_of_head": self.as_of_head,
                "done": self.done,
                "after": self.after,
                "audit_first": self.audit_first,
                "audit_through": self.audit_through,
                "batches": self.batches,
                "pending": self.pending,
            },
            sort_keys=True,
        )
        run.counts = json.dumps({"removed": self.removed, "held": self.held}, sort_keys=True)

    def count(self, key: str, removed: int, held: int) -> None:
        self.removed[key] = self.removed.get(key, 0) + removed
        if held:
            self.held[key] = self.held.get(key, 0) + held


@dataclass
class _Claim:
    run_id: str
    owner: str
    started_by: str
    as_of: datetime
    state: _State
    resumed: bool


@dataclass(frozen=True)
class _Phase:
    tenant: str | None
    kind: RetentionKind
    period: Period | None
    cutoff: datetime | None
    skipped_zero: bool

    @property
    def key(self) -> str:
        return f"{self.tenant or ALL_TENANTS}/{self.kind}"

    def report(self) -> PhaseReport:
        return PhaseReport(
            tenant=self.tenant,
            kind=self.kind,
            period=self.period,
            cutoff=self.cutoff,
            skipped_zero=self.skipped_zero,
        )


class _Store:
    """The queries of retention on ``retention_runs`` and ``subject_packages``."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def lock_claims(self) -> None:
        """Serialise claims until this transaction ends (PostgreSQL; SQLite's write lock)."""
        if self._session.get_bind().dialect.name == "postgresql":
            self._session.execute(
                text(
                    "SELECT pg_advisory_xact_lock(:cls, "
                    "CAST(CAST(CAST('retention_runs' AS regclass) AS oid) AS integer))"
                ),
                {"cls": _CLAIM_LOCK_CLASS},
            )

    def unfinished(self) -> RetentionRun | None:
        """The newest run that has not finished (running, or failed and resumable)."""
        return self._session.scalars(
            select(RetentionRun)
            .where(RetentionRun.status.in_((RUNNING, FAILED)), RetentionRun.finished_at.is_(None))
            .order_by(RetentionRun.started_at.desc())
            .limit(1)
        ).one_or_none()

    def newest(self) -> RetentionRun | None:
        """The newest run of all."""
        return self._session.scalars(
            select(RetentionRun).order_by(RetentionRun.started_at.desc()).limit(1)
        ).one_or_none()

    def get(self, run_id: str, *, for_update: bool = False) -> RetentionRun:
        """One run by id (it exists: the caller created or claimed it)."""
        query = select(RetentionRun).where(RetentionRun.id == run_id)
        if for_update:
            query = query.with_for_update()
        return self._session.scalars(query).one()

    def add(self, run: RetentionRun) -> None:
        self._session.add(run)
        self._session.flush()

    def recent(self, limit: int) -> Sequence[RetentionRun]:
        """The newest ``limit`` runs."""
        return self._session.scalars(
            select(RetentionRun).order_by(RetentionRun.started_at.desc()).limit(limit)
        ).all()

    def package_tenants(self) -> list[str]:
        return list(self._session.scalars(select(SubjectPackage.tenant).distinct()))

    def expired_packages(
        self, *, tenant: str, before: datetime, after_id: str, limit: int, for_update: bool
    ) -> list[str]:
        query = (
            select(SubjectPackage.id)
            .where(
                SubjectPackage.tenant == tenant,
                SubjectPackage.expires_at <= before,
                SubjectPackage.id > after_id,
            )
            .order_by(SubjectPackage.id)
            .limit(limit)
        )
        if for_update:
            query = query.with_for_update()
        return list(self._session.scalars(query))

    def package_owners(self, package_ids: Collection[str]) -> dict[str, str]:
        """Package id -> the record id of the request it answers."""
        if not package_ids:
            return {}
        rows = self._session.execute(
            select(SubjectPackage.id, SubjectRequest.record_id)
            .join(SubjectRequest, SubjectRequest.id == SubjectPackage.request_id)
            .where(SubjectPackage.id.in_(sorted(package_ids)))
        ).all()
        return {str(package_id): str(record_id) for package_id, record_id in rows}

    def delete_packages(self, *, tenant: str, package_ids: Collection[str]) -> list[str]:
        if not package_ids:
            return []
        ids = sorted(package_ids)
        self._session.execute(
            delete(SubjectPackage)
            .where(SubjectPackage.tenant == tenant, SubjectPackage.id.in_(ids))
            .execution_options(synchronize_session=False)
        )
        return ids


# ----------------------------------------------------------------------------- the service


class RetentionService:
    """Plan and run retention over one database; the CLI, the API and the scheduler share it."""

    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        trail: AuditTrail,
        records: RecordService,
        policy: RetentionPolicy | None = None,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self.settings = settings
        self.policy = policy or load_retention_policy(settings.policies_dir / RETENTION_FILENAME)
        self._factory = session_factory
        self._trail = trail
        self._records = records
        self._pruner = AuditPruner(trail.keys)
        self._batch = settings.retention_batch
        self._lease = timedelta(seconds=lease_seconds)

    # ------------------------------------------------------------------------ entry points

    def zero_rules(self) -> list[str]:
        """The policy's zero periods as ``scope/kind`` (``default/records``, ``acme/notes``)."""
        return [f"{scope}/{kind}" for scope, kind in self.policy.zero_rules()]

    def plan(
        self,
        *,
        started_by: str,
        as_of: datetime | None = None,
        skip_zero_rules: bool = False,
    ) -> RetentionReport:
        """What a run would remove now, changing nothing (``--dry-run``); audited.

        If an interrupted run is waiting to be resumed (same policy), the plan is that of its
        resumption: its ``as_of``, after its cursor. Zero periods are planned as a confirmed
        run would apply them (see ``zero_rules`` in the report).
        """
        now = datetime.now(UTC)
        with session_scope(self._factory) as session:
            waiting = _Store(session).unfinished()
            if waiting is not None and waiting.policy_sha256 == self.policy.sha256:
                state, as_of, run_id = _State.load(waiting), waiting.as_of, waiting.id
            else:
                head = AuditRepository(session).head()
                state = _State(as_of_head=0 if head is None else head[0])
                as_of, run_id = as_of or now, None
            report = RetentionReport(
                dry_run=True,
                as_of=as_of,
                policy_sha256=self.policy.sha256,
                run_id=run_id,
                resumed=run_id is not None,
                zero_rules=self.zero_rules(),
            )
            erased: dict[str, set[str]] = {}
            for phase in self._phases(session, as_of, skip_zero=skip_zero_rules):
                # prospective counts only: what an interrupted run removed is in its counts
                result = phase.report()
                if phase.kind == "audit":
                    self._plan_audit(session, as_of, state, skip_zero_rules, result)
                elif phase.key not in state.done:
                    gone = erased.setdefault(phase.tenant or ALL_TENANTS, set())
                    self._plan_tenant_phase(session, phase, state, gone, result)
                report.phases.append(result)
        if skip_zero_rules:
            report.skipped_rules = report.zero_rules
        self._emit(
            {"action": RUN_ACTION, "tenant": None, "details": report.audit_details()},
            principal=started_by,
        )
        return report

    def run(
        self,
        *,
        started_by: str,
        as_of: datetime | None = None,
        confirm_erase_all: bool = False,
        skip_zero_rules: bool = False,
        on_batch: Callable[[BatchProgress], None] | None = None,
    ) -> RetentionReport:
        """Apply the policy: remove what is past its period, batch by batch; audited.

        ``as_of`` (default now) is the instant every rule is evaluated at; a resumed run keeps
        its own. Zero periods: refused (RetentionConfirmationError) unless
        ``confirm_erase_all``; the scheduler passes ``skip_zero_rules`` instead. Another run
        holding the lease: RetentionBusyError. ``on_batch`` is called after each committed batch.
        """
        zero = self.zero_rules()
        if zero and not confirm_erase_all and not skip_zero_rules:
            self._emit(
                {
                    "action": RUN_ACTION,
                    "tenant": None,
                    "outcome": "failure",
                    "details": {"reason": "confirmation-required", "zero_rules": len(zero)},
                },
                principal=started_by,
            )
            raise RetentionConfirmationError(
                "policies/retention.yaml has zero periods, which remove everything of their kind "
                f"at once: {', '.join(zero)}; run again with --confirm-erase-all if that is meant"
            )
        claim = self._claim(started_by, as_of)
        skipped = zero if skip_zero_rules else []
        if skipped:
            log.warning("retention_zero_rules_skipped", rules=skipped, run_id=claim.run_id)
            self._emit(
                {
                    "action": SKIP_ACTION,
                    "tenant": None,
                    "details": {
                        "run_id": claim.run_id,
                        "reason": "zero-period",
                        "zero_rules": len(skipped),
                        "rules": ",".join(skipped)[:500],
                    },
                },
                principal=started_by,
            )
        report = RetentionReport(
            dry_run=False,
            as_of=claim.as_of,
            policy_sha256=self.policy.sha256,
            run_id=claim.run_id,
            resumed=claim.resumed,
            zero_rules=zero,
            skipped_rules=skipped,
        )
        try:
            self._execute(claim, report, skip_zero=skip_zero_rules, on_batch=on_batch)
            self._finish(claim, report)
        except BaseException as exc:
            self._fail(claim, report, exc)
            raise
        return report

    def recent_runs(self, *, limit: int = 20) -> list[RetentionRun]:
        """The newest runs (detached rows: read them, do not change them)."""
        return recent_runs(self._factory, limit=limit)

    # --------------------------------------------------------------------------- phases

    def _phases(self, session: Session, as_of: datetime, *, skip_zero: bool) -> list[_Phase]:
        tenants = sorted(
            set(RecordRepository(session).tenants()) | set(_Store(session).package_tenants())
        )
        phases: list[_Phase] = []
        for tenant in tenants:
            for kind in TENANT_KINDS:
                period = self.policy.period(tenant, kind)
                zero = skip_zero and period is not None and period.amount == 0
                if kind == "subject_packages":
                    # a package carries its own expiry, set from the policy when it was made
                    cutoff: datetime | None = as_of
                else:
                    cutoff = None if period is None else cutoff_of(period, as_of)
                phases.append(_Phase(tenant, kind, period, cutoff, skipped_zero=zero))
        audit_period = self._default_audit_period()
        cutoff_all = None if audit_period is None else cutoff_of(audit_period, as_of)
        phases.append(_Phase(None, "audit", audit_period, cutoff_all, skipped_zero=False))
        return phases

    def _default_audit_period(self) -> Period | None:
        """The default's audit period: for events of tenants without an entry, or no tenant."""
        return default_period(self.policy, "audit")

    def _candidates(self, session: Session, phase: _Phase, after: str, *, lock: bool) -> list[str]:
        if phase.cutoff is None or phase.skipped_zero or phase.tenant is None:
            return []
        if phase.kind == "records":
            found = RecordRepository(session).inactive_since(
                tenant=phase.tenant,
                before=phase.cutoff,
                after_id=after,
                limit=self._batch,
                for_update=lock,
            )
        elif phase.kind == "notes":
            found = RecordRepository(session).notes_written_before(
                tenant=phase.tenant,
                before=phase.cutoff,
                after_id=after,
                limit=self._batch,
                for_update=lock,
            )
        else:
            found = _Store(session).expired_packages(
                tenant=phase.tenant,
                before=phase.cutoff,
                after_id=after,
                limit=self._batch,
                for_update=lock,
            )
        return list(found)

    def _held(self, session: Session, phase: _Phase, ids: Sequence[str]) -> set[str]:
        """The candidates a legal hold covers (a package: through its request's customer)."""
        if not ids or phase.tenant is None:
            return set()
        if phase.kind != "subject_packages":
            customers = {record_id: self._trail.customer_hash(record_id) for record_id in ids}
            return held_records(session, tenant=phase.tenant, customers=customers)
        owners = _Store(session).package_owners(ids)
        records = {owner: self._trail.customer_hash(owner) for owner in set(owners.values())}
        held = held_records(session, tenant=phase.tenant, customers=records)
        return {package_id for package_id, owner in owners.items() if owner in held}

    def _apply(self, session: Session, phase: _Phase, ids: Sequence[str]) -> list[str]:
        if not ids or phase.tenant is None:
            return []
        if phase.kind == "records":
            return self._records.erase_many(session, tenant=phase.tenant, record_ids=ids)
        if phase.kind == "notes":
            return self._records.remove_notes_many(session, tenant=phase.tenant, record_ids=ids)
        return _Store(session).delete_packages(tenant=phase.tenant, package_ids=ids)

    def _prune_rules(
        self, session: Session, as_of: datetime, as_of_head: int, *, skip_zero: bool
    ) -> PruneRules:
        """The audit trail's rules at ``as_of``: periods per tenant, holds, ceilings."""

        def cutoff(period: Period | None) -> datetime | None:
            if period is None or (skip_zero and period.amount == 0):
                return None
            return cutoff_of(period, as_of)

        cutoffs = {
            tenant: cutoff(self.policy.period(tenant, "audit"))
            for tenant in self.policy.named_tenants()
        }
        default_cutoff = cutoff(self._default_audit_period())
        # every event is evaluated by the incident rules before it may go; and a run never
        # prunes what was written after it began (nor the event that was the head then)
        scanner = IncidentRepository(session).cursor()
        ceiling, stop = as_of_head - 1, STOP_HEAD
        if scanner is not None and scanner.last_seq < ceiling:
            ceiling, stop = scanner.last_seq, STOP_SCANNER
        return PruneRules(
            cutoffs=cutoffs,
            default_cutoff=default_cutoff,
            held_customers=held_customer_hashes(session, hash_of=self._trail.customer_hash),
            held_from_seq=held_evidence_from(session),
            ceiling_seq=ceiling,
            ceiling_stop=stop,
        )

    # ------------------------------------------------------------------------- planning

    def _plan_tenant_phase(
        self,
        session: Session,
        phase: _Phase,
        state: _State,
        erased: set[str],
        result: PhaseReport,
    ) -> None:
        """Walk the phase's candidates as a run would, from its cursor, removing nothing.

        ``erased``: the tenant's records the records phase would shred; a run's later phases
        no longer see them (they are not active), so the plan leaves them out too.
        """
        after = state.after.get(phase.key, "")
        while True:
            ids = self._candidates(session, phase, after, lock=False)
            live = [i for i in ids if i not in erased] if phase.kind == "notes" else ids
            held = self._held(session, phase, live)
            gone = [i for i in live if i not in held]
            result.removed_ids.extend(gone)
            result.removed += len(gone)
            result.held += len(held)
            if phase.kind == "records":
                erased.update(gone)
            if len(ids) < self._batch:
                return
            after = ids[-1]

    def _plan_audit(
        self,
        session: Session,
        as_of: datetime,
        state: _State,
        skip_zero: bool,
        result: PhaseReport,
    ) -> None:
        """The prefix a run would prune now (all of it: a run prunes it batch by batch)."""
        rules = self._prune_rules(session, as_of, state.as_of_head, skip_zero=skip_zero)
        plan = self._pruner.plan(session, rules)
        result.stop = plan.stop
        if plan.events:
            result.first_seq = plan.first_seq
            result.through_seq = plan.through_seq
            result.removed += plan.events

    # -------------------------------------------------------------------------- running

    def _claim(self, started_by: str, as_of: datetime | None) -> _Claim:
        """Resume the interrupted run, or begin a new one; RetentionBusyError if one runs."""
        now = datetime.now(UTC)
        owner = str(uuid.uuid4())
        repairs: list[tuple[str, _State]] = []
        with session_scope(self._factory, write=True) as session:
            store = _Store(session)
            store.lock_claims()
            newest = store.newest()
            if newest is not None and newest.status == FINISHED:
                pending = _State.load(newest)
                if pending.pending is not None:
                    repairs.append((newest.started_by, pending))
            run = store.unfinished()
            claim: _Claim | None = None
            if run is not None:
                state = _State.load(run)
                alive = state.lease_until is not None and state.lease_until > now
                if run.status == RUNNING and alive:
                    until = state.lease_until or now
                    raise RetentionBusyError(
                        f"retention run {run.id} (started by {run.started_by}) is in progress; "
                        f"if it died, the next run resumes it after {until:%Y-%m-%d %H:%M:%S} UTC"
                    )
                if state.pending is not None:
                    repairs.append((run.started_by, state))
                if run.policy_sha256 == self.policy.sha256:
                    state.owner, state.lease_until = owner, now + self._lease
                    run.status = RUNNING
                    state.store(run)
                    claim = _Claim(run.id, owner, run.started_by, run.as_of, state, resumed=True)
                else:
                    # the policy changed since: what it would have removed is no longer what
                    # the policy says; close it for good and start over under the new one
                    state.owner, state.lease_until = None, None
                    run.status, run.finished_at = FAILED, now
                    state.store(run)
            if claim is None:
                head = AuditRepository(session).head()
                state = _State(
                    owner=owner,
                    lease_until=now + self._lease,
                    as_of_head=0 if head is None else head[0],
                )
                run = RetentionRun(
                    id=str(uuid.uuid4()),
                    status=RUNNING,
                    started_at=now,
                    started_by=started_by,
                    as_of=as_of or now,
                    policy_sha256=self.policy.sha256,
                    cursor="{}",
                    counts="{}",
                )
                state.store(run)
                store.add(run)
                claim = _Claim(run.id, owner, started_by, run.as_of, state, resumed=False)
        for principal, pending_state in repairs:
            self._repair(pending_state, principal)
        claim.state.pending = None
        return claim

    def _repair(self, state: _State, principal: str) -> None:
        """Write a batch's audit event that a crash kept from being appended, if it was."""
        pending = state.pending
        if pending is None:
            return
        wanted = pending["details"]
        # the event, if it was written, came after the batch committed (``after_seq``)
        with session_scope(self._factory) as session:
            written = AuditRepository(session).search(
                AuditFilters(action=pending["action"]),
                customer_hash=None,
                limit=1000,
                after_seq=int(pending.get("after_seq", 0)),
            )
        for event in written:
            details = json.loads(event.details)
            if (details.get("run_id"), details.get("batch")) == (
                wanted.get("run_id"),
                wanted.get("batch"),
            ):
                return
        self._emit(pending, principal=principal)

    def _own(self, session: Session, claim: _Claim) -> RetentionRun:
        """The run, locked, if this claim still owns it (compare-and-set); lease renewed."""
        run = _Store(session).get(claim.run_id, for_update=True)
        stored = _State.load(run)
        if stored.owner != claim.owner or run.status != RUNNING:
            raise RetentionBusyError(
                f"retention run {claim.run_id} was taken over by another process; this one stops"
            )
        claim.state.owner = claim.owner
        claim.state.lease_until = datetime.now(UTC) + self._lease
        return run

    def _execute(
        self,
        claim: _Claim,
        report: RetentionReport,
        *,
        skip_zero: bool,
        on_batch: Callable[[BatchProgress], None] | None,
    ) -> None:
        with session_scope(self._factory) as session:
            phases = self._phases(session, claim.as_of, skip_zero=skip_zero)
        for phase in phases:
            result = phase.report()
            report.phases.append(result)
            if phase.key not in claim.state.done:
                if phase.kind == "audit":
                    self._run_audit(claim, phase, result, skip_zero, on_batch)
                else:
                    self._run_tenant_phase(claim, phase, result, on_batch)
            result.removed = claim.state.removed.get(phase.key, 0)
            result.held = claim.state.held.get(phase.key, 0)
            if phase.kind == "audit":
                result.first_seq = claim.state.audit_first
                result.through_seq = claim.state.audit_through
        report.batches = claim.state.batches

    def _run_tenant_phase(
        self,
        claim: _Claim,
        phase: _Phase,
        result: PhaseReport,
        on_batch: Callable[[BatchProgress], None] | None,
    ) -> None:
        state = claim.state
        while True:
            with session_scope(self._factory, write=True) as session:
                run = self._own(session, claim)
                after = state.after.get(phase.key, "")
                ids = self._candidates(session, phase, after, lock=True)
                held = self._held(session, phase, ids)
                removed = self._apply(session, phase, [i for i in ids if i not in held])
                if ids:
                    state.after[phase.key] = ids[-1]
                done = len(ids) < self._batch
                if done:
                    state.done.append(phase.key)
                state.pending = None
                if removed or held:
                    state.batches += 1
                    state.count(phase.key, len(removed), len(held))
                    state.pending = {
                        "after_seq": _head_seq(session),
                        "action": ACTIONS[phase.kind],
                        "tenant": phase.tenant,
                        "details": {
                            "run_id": claim.run_id,
                            "batch": state.batches,
                            "removed": len(removed),
                            "held": len(held),
                        },
                    }
                state.store(run)
            result.removed_ids.extend(removed)
            self._after_batch(claim, phase.key, len(removed), len(held), on_batch)
            if done:
                return

    def _run_audit(
        self,
        claim: _Claim,
        phase: _Phase,
        result: PhaseReport,
        skip_zero: bool,
        on_batch: Callable[[BatchProgress], None] | None,
    ) -> None:
        state = claim.state
        while True:
            with session_scope(self._factory, write=True) as session:
                run = self._own(session, claim)
                rules = self._prune_rules(
                    session, claim.as_of, state.as_of_head, skip_zero=skip_zero
                )
                plan, seal = self._pruner.prune(session, rules, limit=self._batch)
                result.stop = plan.stop
                done = seal is None or plan.stop != STOP_BATCH
                if done:
                    state.done.append(phase.key)
                state.pending = None
                removed = 0
                if seal is not None:
                    removed = seal.events_removed
                    state.batches += 1
                    state.count(phase.key, removed, 0)
                    state.audit_first = state.audit_first or plan.first_seq
                    state.audit_through = seal.seq
                    state.pending = {
                        "after_seq": _head_seq(session),
                        "action": ACTIONS["audit"],
                        "tenant": None,
                        "details": {
                            "run_id": claim.run_id,
                            "batch": state.batches,
                            "removed": removed,
                            "through_seq": seal.seq,
                        },
                    }
                state.store(run)
            self._after_batch(claim, phase.key, removed, 0, on_batch)
            if done:
                return

    def _after_batch(
        self,
        claim: _Claim,
        key: str,
        removed: int,
        held: int,
        on_batch: Callable[[BatchProgress], None] | None,
    ) -> None:
        pending = claim.state.pending
        if pending is None:
            return
        self._emit(pending, principal=claim.started_by)
        if on_batch is not None:
            on_batch(
                BatchProgress(
                    run_id=claim.run_id,
                    phase=key,
                    batch=int(pending["details"]["batch"]),
                    removed=removed,
                    held=held,
                )
            )

    def _finish(self, claim: _Claim, report: RetentionReport) -> None:
        final: dict[str, Any] = {
            "action": RUN_ACTION,
            "tenant": None,
            "details": report.audit_details(),
        }
        with session_scope(self._factory, write=True) as session:
            run = self._own(session, claim)
            final["after_seq"] = _head_seq(session)
            claim.state.owner, claim.state.lease_until = None, None
            claim.state.pending = final
            run.status, run.finished_at = FINISHED, datetime.now(UTC)
            claim.state.store(run)
        self._emit(final, principal=claim.started_by)

    def _fail(self, claim: _Claim, report: RetentionReport, exc: BaseException) -> None:
        """Mark the run resumable at once (lease released) and audit the failure; never raise."""
        try:
            with session_scope(self._factory, write=True) as session:
                run = _Store(session).get(claim.run_id, for_update=True)
                stored = _State.load(run)
                if stored.owner == claim.owner and run.status == RUNNING:
                    stored.owner, stored.lease_until = None, None
                    run.status = FAILED
                    stored.store(run)
        except Exception as error:  # noqa: BLE001 - the lease expires anyway; report the first
            log.warning("retention_fail_mark_failed", error_type=type(error).__name__)
        reason = exc.type_slug if isinstance(exc, GuardError) else type(exc).__name__
        details = {**report.audit_details(), "reason": reason[:64]}
        try:
            self._emit(
                {"action": RUN_ACTION, "tenant": None, "outcome": "failure", "details": details},
                principal=claim.started_by,
            )
        except Exception as error:  # noqa: BLE001 - the original error is what the caller needs
            log.warning("retention_fail_audit_failed", error_type=type(error).__name__)

    def _emit(self, event: dict[str, Any], *, principal: str) -> None:
        self._trail.record(
            action=event["action"],
            resource=RESOURCE,
            decision="allow",
            outcome=event.get("outcome", "success"),
            principal=principal,
            tenant=event.get("tenant"),
            details=cast("dict[str, str | int | bool]", event["details"]),
        )


def _head_seq(session: Session) -> int:
    """The audit trail's head now: a batch's event, once written, comes after it."""
    head = AuditRepository(session).head()
    return 0 if head is None else head[0]


# ------------------------------------------------------------------------ reading it back


def recent_runs(factory: sessionmaker[Session], *, limit: int = 20) -> list[RetentionRun]:
    """The newest retention runs (detached rows: read them, do not change them)."""
    with session_scope(factory) as session:
        return list(_Store(session).recent(limit))


def run_counts(run: RetentionRun, *, tenant: str | None) -> tuple[dict[str, int], dict[str, int]]:
    """(removed, held) per kind of a run: one tenant's (and the audit trail's), or all.

    For one tenant the keys are the kinds (``records``, ``notes``, ``subject_packages``) and
    ``audit`` (the global trail); for all (``tenant`` None) they are ``tenant/kind``. Nothing of
    another tenant is shown to an officer.
    """
    state = _State.load(run)

    def pick(counts: dict[str, int]) -> dict[str, int]:
        if tenant is None:
            return dict(sorted(counts.items()))
        shown: dict[str, int] = {}
        for key, value in sorted(counts.items()):
            owner, _, kind = key.partition("/")
            if owner in {tenant, ALL_TENANTS}:
                shown[kind] = value
        return shown

    return pick(state.removed), pick(state.held)


def default_period(policy: RetentionPolicy, kind: RetentionKind) -> Period | None:
    """The ``default`` entry's period of ``kind`` (what tenants without their own entry keep)."""
    rule = getattr(policy.spec.default, kind)
    if rule is None:
        return None
    amount = int(next(iter(rule.model_dump().values())))
    return Period(kind=kind, amount=amount, unit=RETENTION_UNITS[kind])


def period_text(period: Period | None) -> str:
    """A period for people: "365 days", or "kept until erased"."""
    return "kept until erased" if period is None else str(period)


def build_retention_service(
    settings: Settings, session_factory: sessionmaker[Session], trail: AuditTrail
) -> RetentionService:
    """A RetentionService on the configured keys; its RecordService never analyses text.

    Retention shreds and re-keys, it never writes notes: the NLP model is not loaded.
    """
    from guard.crypto.blind_index import BlindIndexer  # noqa: PLC0415 - key loading, once
    from guard.crypto.envelope import EnvelopeCipher  # noqa: PLC0415
    from guard.crypto.providers import load_key_provider  # noqa: PLC0415
    from guard.records.cli import NoAnalysis  # noqa: PLC0415
    from guard.records.service import RecordService  # noqa: PLC0415
    from guard.redaction.service import Redactor  # noqa: PLC0415

    records = RecordService(
        settings,
        session_factory,
        EnvelopeCipher(load_key_provider(settings)),
        BlindIndexer.from_settings(settings),
        NoAnalysis(),
        Redactor(settings=settings),
    )
    return RetentionService(settings, session_factory, trail, records)
