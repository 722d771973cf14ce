"""The scanner: Sigma rules over the audit trail, incrementally, into incidents.

Each pass reads the events after the cursor in batches, feeds them to the rule evaluator, and in
one short write transaction opens or updates incidents and moves the cursor. Cursor and
incidents commit together, so a crash either loses both (the batch is read again) or neither:
every event is evaluated once into the incidents, however often the scanner restarts.
Correlation windows (counts per principal in the last hour, ...) live in memory; after a
restart, or when another scanner moved the cursor, they are rebuilt by replaying the events of
the longest window before the cursor without emitting anything.

The batch is read and evaluated outside any write transaction (on SQLite a write transaction
would hold up every audit append), then the write checks that the cursor has not moved: two
scanners (two ``guard serve`` hosts, a ``guard incidents scan`` beside a server) never apply
the same events twice. A hit for the same rule and group-by values as an incident still being
worked, within the policy's deduplication window, updates that incident instead of opening one.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import structlog
from sqlalchemy import func, select

from guard.audit.chain import canonical_json
from guard.audit.models import AuditEvent
from guard.audit.repository import AuditRepository
from guard.audit.verify import verify_range
from guard.incidents.errors import RuleError
from guard.incidents.models import Incident, IncidentEntry
from guard.incidents.policy import load_incident_policy
from guard.incidents.repository import IncidentRepository
from guard.incidents.runbooks import load_runbooks
from guard.incidents.sigma import Evaluator, Hit, RuleSet
from guard.storage.engine import session_scope

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from sqlalchemy import Row
    from sqlalchemy.orm import Session, sessionmaker

    from guard.audit.schemas import VerifyReport
    from guard.audit.service import AuditTrail
    from guard.config import Settings
    from guard.incidents.policy import IncidentPolicy
    from guard.incidents.runbooks import Runbook

log = structlog.get_logger(__name__)

#: The principal the scanner's own audit events name.
SCANNER_PRINCIPAL = "incident-scanner"
#: Affected customers kept per hit and seqs named in a timeline entry are bounded.
_MAX_CUSTOMERS_PER_HIT = 10_000


@dataclass
class ScanReport:
    """What one ``scan()`` did."""

    events: int = 0
    hits: int = 0
    opened: int = 0
    updated: int = 0
    cursor: int = 0
    seconds: float = 0.0
    opened_ids: list[str] = field(default_factory=list)
    #: Incidents whose evidence (the chain over their events) was verified after the pass.
    sealed: int = 0


@dataclass
class _Merged:
    """The hits of one rule and group within one batch, merged."""

    hit: Hit
    group_key: str
    first_seq: int
    last_seq: int
    customers: dict[str, int]
    entity_types: set[str]
    actions: set[str]
    count: int
    hits: int = 1


def group_key(hit: Hit) -> str:
    """The deduplication key of a hit: rule, tenant and group-by values."""
    material = canonical_json({"rule": hit.rule.id, "tenant": hit.tenant, "group": list(hit.group)})
    return hashlib.sha256(material.encode()).hexdigest()


def rules_signature(directory: Path) -> str:
    """A cheap signature of the rule files (names, sizes, mtimes): reload when it changes."""
    parts = []
    for path in sorted([*directory.glob("*.yml"), *directory.glob("*.yaml")]):
        stat = path.stat()
        parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class IncidentScanner:
    """Evaluates the rules over new audit events and keeps incidents up to date."""

    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: sessionmaker[Session],
        trail: AuditTrail,
        rules: RuleSet | None = None,
        policy: IncidentPolicy | None = None,
        runbooks: dict[str, Runbook] | None = None,
    ) -> None:
        self._settings = settings
        self._factory = session_factory
        self._trail = trail
        self._rules_dir = settings.incident_rules_dir
        self._watch_rules = rules is None
        self._rules_signature = rules_signature(self._rules_dir) if rules is None else ""
        self.rules = rules if rules is not None else RuleSet.load(self._rules_dir)
        self.policy = policy or load_incident_policy(settings.policies_dir / "incidents.yaml")
        self.runbooks = runbooks if runbooks is not None else load_runbooks(settings.runbooks_dir)
        self._batch = settings.incident_scan_batch
        self._evaluator: Evaluator | None = None
        #: The seq the evaluator's windows have seen up to (None: to be rebuilt).
        self._at: int | None = None

    # ------------------------------------------------------------------ rules in force

    def reload_rules(self) -> bool:
        """Load the rule files again if they changed; a bad file keeps the rules in force.

        Returns whether new rules were taken. A refused reload is logged and audited (action
        ``incidents.rules_reload``, outcome failure) with the file, rule and field, no data.
        """
        if not self._watch_rules:
            return False
        signature = rules_signature(self._rules_dir)
        if signature == self._rules_signature:
            return False
        self._rules_signature = signature
        try:
            rules = RuleSet.load(self._rules_dir)
        except RuleError as exc:
            log.error("incident_rules_refused", reason=exc.message)  # noqa: TRY400 - names the file, rule and field; a traceback adds nothing
            self._audit_reload(ok=False, reason=exc.message)
            return False
        self.rules = rules
        self._evaluator, self._at = None, None
        self._audit_reload(ok=True, reason=f"{len(rules.rules)} rules")
        return True

    def _audit_reload(self, *, ok: bool, reason: str) -> None:
        self._trail.record(
            action="incidents.rules_reload",
            resource="incident_rules",
            decision="allow",
            outcome="success" if ok else "failure",
            principal=SCANNER_PRINCIPAL,
            details={"reason": reason[:200]},
        )

    # ------------------------------------------------------------------ scanning

    def scan(self, *, max_events: int | None = None, seal: bool = True) -> ScanReport:
        """Evaluate every event after the cursor (at most ``max_events``); see the module doc.

        ``seal``: then verify the chain over the new incidents' events (:meth:`seal_evidence`).
        """
        started = time.perf_counter()
        report = ScanReport()
        self.reload_rules()
        while max_events is None or report.events < max_events:
            limit = (
                self._batch if max_events is None else min(self._batch, max_events - report.events)
            )
            with session_scope(self._factory) as session:
                cursor_row = IncidentRepository(session).cursor()
                cursor = 0 if cursor_row is None else cursor_row.last_seq
                evaluator = self._evaluator_at(session, cursor)
                rows = AuditRepository(session).events_after(cursor, limit=limit)
            if not rows:
                report.cursor = cursor
                break
            merged: dict[tuple[str, str], _Merged] = {}
            for row in rows:
                for hit in evaluator.feed(_event(row)):
                    report.hits += 1
                    _merge(merged, hit, _foreign_customers(hit, row))
            last_seq = rows[-1].seq
            self._at = last_seq
            applied = self._apply(cursor, last_seq, list(merged.values()), report)
            if not applied:
                # another scanner moved the cursor meanwhile: rebuild from where it is now
                self._evaluator, self._at = None, None
                continue
            report.events += len(rows)
            report.cursor = last_seq
        if seal:
            report.sealed = self.seal_evidence()
        report.seconds = time.perf_counter() - started
        return report

    def seal_evidence(self) -> int:
        """Verify the chain over the events of every incident not yet verified; how many.

        Done after a pass, not inside it, so that rule evaluation (and the short write that
        opens incidents) never waits for hashing. Incidents whose ranges overlap or touch are
        verified in one walk; a walk that finds a problem is redone per incident, so each one
        says whether *its* events are intact.
        """
        with session_scope(self._factory) as session:
            pending = [
                (row.id, row.first_seq, row.last_seq)
                for row in IncidentRepository(session).unverified()
            ]
        if not pending:
            return 0
        results: dict[str, VerifyReport] = {}
        for group in _touching(pending):
            first = min(item[1] for item in group)
            last = max(item[2] for item in group)
            walk = verify_range(self._factory, self._trail.keys, first_seq=first, last_seq=last)
            for incident_id, first_seq, last_seq in group:
                results[incident_id] = (
                    walk
                    if walk.ok or len(group) == 1
                    else verify_range(
                        self._factory, self._trail.keys, first_seq=first_seq, last_seq=last_seq
                    )
                )
        now = datetime.now(UTC)
        with session_scope(self._factory, write=True) as session:
            repo = IncidentRepository(session)
            for incident_id, first_seq, last_seq in pending:
                result = results[incident_id]
                detail = (
                    f"events {first_seq}..{last_seq} verified"
                    if result.ok
                    else f"broken at seq {result.first_bad_seq}: {result.finding} ({result.detail})"
                )
                repo.seal(incident_id, ok=result.ok, detail=detail[:200], now=now)
                repo.add_entry(
                    IncidentEntry(
                        incident_id=incident_id,
                        ts=now,
                        kind="evidence",
                        actor=SCANNER_PRINCIPAL,
                        facts=canonical_json(
                            {"first_seq": first_seq, "last_seq": last_seq, "chain_ok": result.ok}
                        ),
                    )
                )
        return len(pending)

    def _evaluator_at(self, session: Session, cursor: int) -> Evaluator:
        """An evaluator whose correlation windows hold the events up to ``cursor``."""
        if self._evaluator is not None and self._at == cursor:
            return self._evaluator
        evaluator = Evaluator(self.rules, timezone=self.policy.timezone)
        span = self.rules.max_timespan
        if cursor and span.total_seconds() > 0:
            cursor_ts = session.execute(
                select(AuditEvent.ts).where(AuditEvent.seq == cursor)
            ).scalar_one_or_none()
            if cursor_ts is not None:
                start = session.execute(
                    select(func.min(AuditEvent.seq)).where(AuditEvent.ts >= cursor_ts - span)
                ).scalar_one_or_none()
                repo = AuditRepository(session)
                for row in repo.stream_events(
                    batch_size=self._batch, after_seq=(start or cursor) - 1, until_seq=cursor
                ):
                    evaluator.feed(_event(row), emit=False)
        self._evaluator, self._at = evaluator, cursor
        return evaluator

    def _apply(self, cursor: int, last_seq: int, merged: list[_Merged], report: ScanReport) -> bool:
        """Open or update incidents and move the cursor, in one transaction; False if raced."""
        now = datetime.now(UTC)
        opened: list[Incident] = []
        with session_scope(self._factory, write=True) as session:
            repo = IncidentRepository(session)
            repo.lock_scanner()
            row = repo.cursor(for_update=True)
            if (0 if row is None else row.last_seq) != cursor:
                return False
            for item in merged:
                incident = repo.active_for(item.hit.rule.id, item.group_key)
                if incident is not None and _within(incident, item, self.policy):
                    _update(repo, incident, item, now)
                    report.updated += 1
                else:
                    opened.append(self._open(repo, item, now))
            repo.save_cursor(last_seq=last_seq, now=now, fingerprint=self.rules.fingerprint())
        for incident in opened:
            report.opened += 1
            report.opened_ids.append(incident.id)
            self._trail.record(
                action="incidents.open",
                resource=f"incident:{incident.id}",
                decision="allow",
                outcome="success",
                principal=SCANNER_PRINCIPAL,
                tenant=incident.tenant,
                details={
                    "rule_id": incident.rule_id,
                    "severity": incident.severity,
                    "first_seq": incident.first_seq,
                    "last_seq": incident.last_seq,
                },
            )
        return True

    def _open(self, repo: IncidentRepository, item: _Merged, now: datetime) -> Incident:
        rule = item.hit.rule
        runbook = rule.runbook if rule.runbook in self.runbooks else self.policy.default_runbook
        incident = repo.add(
            Incident(
                id=str(uuid.uuid4()),
                number=repo.next_number(),
                tenant=item.hit.tenant,
                title=rule.title[:200],
                rule_id=rule.id,
                rule_title=rule.title[:200],
                description=rule.description or rule.title,
                severity=rule.level,
                status="open",
                group_key=item.group_key,
                group_values=canonical_json(dict(item.hit.group)),
                runbook=runbook,
                opened_at=now,
                became_aware_at=now,
                updated_at=now,
                first_event_at=item.hit.first_ts,
                last_event_at=item.hit.last_ts,
                first_seq=item.first_seq,
                last_seq=item.last_seq,
                hits=item.hits,
                entity_types=json.dumps(sorted(item.entity_types)),
                actions=json.dumps(sorted(item.actions)),
                chain_ok=None,
                chain_detail="not yet verified",
            )
        )
        repo.add_customers(incident.id, item.customers.items())
        repo.add_entry(
            IncidentEntry(
                incident_id=incident.id,
                ts=now,
                kind="opened",
                actor=SCANNER_PRINCIPAL,
                facts=canonical_json(
                    {
                        "rule": rule.id,
                        "first_seq": item.first_seq,
                        "last_seq": item.last_seq,
                        "events": item.count,
                    }
                ),
            )
        )
        return incident


def _touching(items: list[tuple[str, int, int]]) -> list[list[tuple[str, int, int]]]:
    """(id, first, last) ranges grouped where they overlap or touch (one walk each)."""
    groups: list[list[tuple[str, int, int]]] = []
    reach = -1
    for item in sorted(items, key=lambda i: (i[1], i[2])):
        if groups and item[1] <= reach + 1:
            groups[-1].append(item)
            reach = max(reach, item[2])
        else:
            groups.append([item])
            reach = item[2]
    return groups


def _event(row: Row[Any]) -> Mapping[str, Any]:
    """A stored row as the evaluator reads it (details and counts stay JSON text)."""
    return cast("Mapping[str, Any]", row._mapping)  # noqa: SLF001 - Row's public mapping


def _foreign_customers(hit: Hit, row: Row[Any]) -> frozenset[str] | None:
    """For a blocked message: the customers whose data it carried, not its recipient.

    A ``message.check`` event's ``customer`` is the conversation's customer; the customers
    whose data nearly went out are in ``details.foreign_customers`` (keyed hashes). Those are
    the affected ones. None: the hit's own ``customers`` stand.
    """
    if hit.actions != {"message.check"} or row.action != "message.check":
        return None
    details = json.loads(row.details) if isinstance(row.details, str) else row.details
    listed = details.get("foreign_customers") if isinstance(details, dict) else None
    if not isinstance(listed, str) or not listed:
        return frozenset()
    return frozenset(part for part in listed.split(",") if part)


def _merge(
    merged: dict[tuple[str, str], _Merged], hit: Hit, affected: frozenset[str] | None = None
) -> None:
    key = group_key(hit)
    seqs = hit.seqs
    first, last = (seqs[0], seqs[-1]) if seqs else (0, 0)
    found = merged.get((hit.rule.id, key))
    customers = dict.fromkeys(hit.customers if affected is None else affected, last)
    if found is None:
        merged[(hit.rule.id, key)] = _Merged(
            hit=hit,
            group_key=key,
            first_seq=first,
            last_seq=last,
            customers=customers,
            entity_types=set(hit.entity_types),
            actions=set(hit.actions),
            count=hit.count,
        )
        return
    found.first_seq = min(found.first_seq, first)
    found.last_seq = max(found.last_seq, last)
    if len(found.customers) < _MAX_CUSTOMERS_PER_HIT:
        for customer, seq in customers.items():
            found.customers.setdefault(customer, seq)
    found.entity_types.update(hit.entity_types)
    found.actions.update(hit.actions)
    found.count = max(found.count, hit.count)
    found.hits += 1
    found.hit = Hit(
        rule=hit.rule,
        group=hit.group,
        tenant=hit.tenant,
        seqs=hit.seqs,
        customers=hit.customers,
        entity_types=hit.entity_types,
        actions=hit.actions,
        first_ts=min(found.hit.first_ts, hit.first_ts),
        last_ts=max(found.hit.last_ts, hit.last_ts),
        count=hit.count,
    )


def _within(incident: Incident, item: _Merged, policy: IncidentPolicy) -> bool:
    """Whether the hit continues the incident (within the deduplication window)."""
    return item.hit.first_ts - incident.last_event_at <= policy.dedup_window


def _update(repo: IncidentRepository, incident: Incident, item: _Merged, now: datetime) -> None:
    incident.last_seq = max(incident.last_seq, item.last_seq)
    incident.last_event_at = max(incident.last_event_at, item.hit.last_ts)
    incident.hits += item.hits
    incident.updated_at = now
    incident.entity_types = json.dumps(
        sorted(set(json.loads(incident.entity_types)) | item.entity_types)
    )
    incident.actions = json.dumps(sorted(set(json.loads(incident.actions)) | item.actions))
    new_customers = repo.add_customers(incident.id, item.customers.items())
    repo.add_entry(
        IncidentEntry(
            incident_id=incident.id,
            ts=now,
            kind="events",
            actor=SCANNER_PRINCIPAL,
            facts=canonical_json(
                {
                    "first_seq": item.first_seq,
                    "last_seq": item.last_seq,
                    "hits": item.hits,
                    "new_customers": new_customers,
                }
            ),
        )
    )
