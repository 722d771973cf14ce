"""Working an incident: list, show, transition, note, tick steps, clocks, notices, register.

Both front doors (``/v1/incidents`` and ``guard incidents``) call this service; it never audits
(the caller does, with its principal) and never raises HTTP errors.

Visibility: an officer sees the incidents of their tenant and system-wide ones (tenant None:
a broken chain, failed authentications that name no tenant). ``tenant=None`` in a call means
the operator on the command line, who sees every incident.

Deadlines run from ``became_aware_at`` (when guard opened the incident): the supervisory
authority within 72 hours (GDPR Art. 33(1)), individuals within 60 days (HIPAA, 45 CFR
164.404(b)); both are policy (policies/incidents.yaml). A deadline is met when the party is
marked notified.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from guard.audit.chain import canonical_json
from guard.incidents.errors import (
    IncidentNotFoundError,
    RunbookError,
    StepNotFoundError,
    TransitionError,
)
from guard.incidents.models import STATUSES, Incident, IncidentEntry
from guard.incidents.notices import (
    NoticeFacts,
    authority_notice,
    customer_notice,
    data_categories,
)
from guard.incidents.repository import IncidentRepository
from guard.incidents.schemas import (
    Deadline,
    Evidence,
    IncidentDetail,
    IncidentPage,
    IncidentSummary,
    RunbookStepState,
    TimelineEntry,
)
from guard.storage.engine import session_scope

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path
    from typing import IO

    from sqlalchemy.orm import Session, sessionmaker

    from guard.api.services import Services
    from guard.config import Settings
    from guard.incidents.policy import IncidentPolicy
    from guard.incidents.runbooks import Runbook
    from guard.records.service import RecordService

#: Actions whose allowed events mean someone saw customer data in clear.
_CLEAR_ACTIONS = frozenset(
    {"records.read", "records.reveal", "records.search", "token.reveal", "tool.call"}
)
MAX_PAGE = 200


@dataclass(frozen=True)
class RegisterEntry:
    """One line of the breach register (GDPR Art. 33(5))."""

    reference: str
    incident_id: str
    title: str
    rule_id: str
    severity: str
    status: str
    tenant: str | None
    became_aware_at: datetime
    first_event_at: datetime
    last_event_at: datetime
    affected_customers: int
    data_categories: tuple[str, ...]
    authority_notified_at: datetime | None
    customers_notified_at: datetime | None
    remedial_actions: tuple[str, ...]
    closed_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
            elif isinstance(value, tuple):
                out[key] = list(value)
            else:
                out[key] = value
        return out


REGISTER_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RegisterEntry))


def write_register_csv(rows: Iterable[dict[str, Any]], out: IO[str]) -> None:
    """The register as CSV; cells a spreadsheet would run as a formula are prefixed with '."""
    writer = csv.writer(out)
    writer.writerow(REGISTER_COLUMNS)
    for row in rows:
        cells = []
        for column in REGISTER_COLUMNS:
            value = row.get(column)
            if isinstance(value, list):
                text = "; ".join(map(str, value))
            else:
                text = "" if value is None else str(value)
            cells.append("'" + text if text.startswith(_FORMULA_START) else text)
        writer.writerow(cells)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def reference(number: int) -> str:
    """An incident's human reference: ``INC-0042``."""
    return f"INC-{number:04d}"


class IncidentService:
    """The incidents of one database; see the module docstring."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        policy: IncidentPolicy,
        runbooks: dict[str, Runbook],
        templates: Path,
        redact_note: Callable[[str, str | None], str],
    ) -> None:
        self._factory = session_factory
        self.policy = policy
        self.runbooks = runbooks
        self._templates = templates
        self._redact_note = redact_note

    # ------------------------------------------------------------------ reading

    def list_incidents(
        self,
        *,
        tenant: str | None,
        status: str | None = None,
        severity: str | None = None,
        rule_id: str | None = None,
        opened_since: datetime | None = None,
        opened_until: datetime | None = None,
        cursor: int | None = None,
        limit: int = 50,
        now: datetime | None = None,
    ) -> IncidentPage:
        """Incidents visible in ``tenant``, newest first, ``limit`` at a time."""
        now = now or datetime.now(UTC)
        limit = max(1, min(limit, MAX_PAGE))
        with session_scope(self._factory) as session:
            repo = IncidentRepository(session)
            rows = repo.search(
                tenant=tenant,
                status=status,
                severity=severity,
                rule_id=rule_id,
                opened_since=opened_since,
                opened_until=opened_until,
                after_number=cursor or 0,
                limit=limit + 1,
            )
            summaries = [self._summary(repo, row, now) for row in rows[:limit]]
        next_cursor = rows[limit - 1].number if len(rows) > limit else None
        return IncidentPage(incidents=summaries, next_cursor=next_cursor)

    def get(
        self, *, tenant: str | None, incident_id: str, now: datetime | None = None
    ) -> IncidentDetail:
        """One incident with its checklist, timeline, evidence and clocks."""
        now = now or datetime.now(UTC)
        with session_scope(self._factory) as session:
            repo = IncidentRepository(session)
            row = self._visible(repo, tenant, incident_id)
            return self._detail(repo, row, now)

    def customer_hashes(self, *, tenant: str | None, incident_id: str) -> list[str]:
        """The affected customers' keyed hashes (as the audit trail holds them)."""
        with session_scope(self._factory) as session:
            repo = IncidentRepository(session)
            self._visible(repo, tenant, incident_id)
            return repo.customer_hashes(incident_id)

    # ------------------------------------------------------------------ working it

    def transition(
        self,
        *,
        tenant: str | None,
        incident_id: str,
        status: str,
        actor: str,
        note: str | None = None,
        now: datetime | None = None,
    ) -> IncidentDetail:
        """Move the incident forward; 409 for any other move (closed → open, back, same)."""
        now = now or datetime.now(UTC)
        if status not in STATUSES:
            raise TransitionError(f"status must be one of {', '.join(STATUSES)}")
        with session_scope(self._factory, write=True) as session:
            repo = IncidentRepository(session)
            row = self._visible(repo, tenant, incident_id, for_update=True)
            current = row.status
            if STATUSES.index(status) <= STATUSES.index(current):
                raise TransitionError(
                    f"incident {reference(row.number)} is {current}; it can only move forward "
                    f"({' → '.join(STATUSES)}), not to {status}"
                )
            repo.set_status(row.id, status, now=now)
            repo.add_entry(
                IncidentEntry(
                    incident_id=row.id,
                    ts=now,
                    kind="transition",
                    actor=actor,
                    facts=canonical_json({"from": current, "to": status}),
                    note=self._redact_note(note, row.tenant) if note else None,
                )
            )
            session.flush()
            session.refresh(row)
            return self._detail(repo, row, now)

    def add_note(
        self,
        *,
        tenant: str | None,
        incident_id: str,
        note: str,
        actor: str,
        kind: str = "note",
        now: datetime | None = None,
    ) -> TimelineEntry:
        """Add a note (PII redacted before it is stored) to the incident's timeline."""
        now = now or datetime.now(UTC)
        with session_scope(self._factory, write=True) as session:
            repo = IncidentRepository(session)
            row = self._visible(repo, tenant, incident_id, for_update=True)
            entry = IncidentEntry(
                incident_id=row.id,
                ts=now,
                kind=kind,
                actor=actor,
                facts="{}",
                note=self._redact_note(note, row.tenant),
            )
            repo.add_entry(entry)
            row.updated_at = now
            return _entry(entry)

    def tick(
        self,
        *,
        tenant: str | None,
        incident_id: str,
        step_id: str,
        actor: str,
        done: bool = True,
        now: datetime | None = None,
    ) -> RunbookStepState:
        """Tick (or untick) one of the incident's runbook steps."""
        now = now or datetime.now(UTC)
        with session_scope(self._factory, write=True) as session:
            repo = IncidentRepository(session)
            row = self._visible(repo, tenant, incident_id, for_update=True)
            step = next((s for s in self._runbook(row).steps if s.id == step_id), None)
            if step is None:
                raise StepNotFoundError(
                    f"runbook {row.runbook!r} of incident {reference(row.number)} has no step "
                    "with this id"
                )
            changed = (
                repo.tick(row.id, step.id, by=actor, now=now)
                if done
                else repo.untick(row.id, step.id)
            )
            if changed:
                repo.add_entry(
                    IncidentEntry(
                        incident_id=row.id,
                        ts=now,
                        kind="step",
                        actor=actor,
                        facts=canonical_json({"step": step.id, "done": done}),
                    )
                )
                row.updated_at = now
            return RunbookStepState(
                id=step.id,
                phase=step.phase,
                text=step.text,
                links=list(step.links),
                done=done,
                done_at=now if done else None,
                done_by=actor if done else None,
            )

    def mark_notified(
        self,
        *,
        tenant: str | None,
        incident_id: str,
        party: str,
        actor: str,
        now: datetime | None = None,
    ) -> IncidentDetail:
        """Record that the authority or the customers were notified (that clock stops)."""
        now = now or datetime.now(UTC)
        with session_scope(self._factory, write=True) as session:
            repo = IncidentRepository(session)
            row = self._visible(repo, tenant, incident_id, for_update=True)
            repo.mark_notified(row.id, party, now=now)
            repo.add_entry(
                IncidentEntry(
                    incident_id=row.id,
                    ts=now,
                    kind="notified",
                    actor=actor,
                    facts=canonical_json({"party": party}),
                )
            )
            session.flush()
            session.refresh(row)
            return self._detail(repo, row, now)

    # ------------------------------------------------------------------ notices

    def facts(self, *, tenant: str | None, incident_id: str) -> NoticeFacts:
        """What the notices say, from the incident and its timeline."""
        with session_scope(self._factory) as session:
            repo = IncidentRepository(session)
            row = self._visible(repo, tenant, incident_id)
            return self._facts(repo, row)

    def authority_notice(self, *, tenant: str | None, incident_id: str) -> str:
        """The draft to the supervisory authority (GDPR Art. 33(3)); holds no customer data."""
        facts = self.facts(tenant=tenant, incident_id=incident_id)
        return authority_notice(facts, self.policy, templates=self._templates)

    def customer_notice(self, facts: NoticeFacts, *, customer_name: str | None) -> str:
        """The draft to one affected customer (GDPR Art. 34), addressed to ``customer_name``."""
        return customer_notice(
            facts, self.policy, templates=self._templates, customer_name=customer_name
        )

    def register(self, *, tenant: str | None) -> list[RegisterEntry]:
        """The breach register (GDPR Art. 33(5)): every incident, its facts, effects, remedy."""
        entries: list[RegisterEntry] = []
        with session_scope(self._factory) as session:
            repo = IncidentRepository(session)
            after = 0
            while True:
                rows = repo.search(tenant=tenant, after_number=after, limit=MAX_PAGE)
                entries.extend(self._register_entry(repo, row) for row in rows)
                if len(rows) < MAX_PAGE:
                    break
                after = rows[-1].number
        return entries

    def resolve_customers(
        self,
        *,
        tenant: str,
        incident_id: str,
        records: RecordService,
        hash_of: Callable[[str], str],
    ) -> tuple[list[str], int]:
        """The affected customers as record ids of ``tenant``; and how many matched none.

        The audit trail holds keyed hashes of record ids; the tenant's records are hashed
        the same way and matched (other tenants' records are never looked at).
        """
        hashes = self.customer_hashes(tenant=tenant, incident_id=incident_id)
        if not hashes:
            return [], 0
        return match_customers(hashes, _record_ids(records, tenant), hash_of)

    def customer_notices(
        self,
        *,
        tenant: str,
        incident_id: str,
        records: RecordService,
        hash_of: Callable[[str], str],
        record_ids: list[str] | None = None,
    ) -> tuple[list[tuple[str, str]], int]:
        """(record id, notice) for each affected customer (or the given ones among them).

        Each customer's name is decrypted for their notice alone; erased records get none.
        """
        from guard.records.errors import RecordErasedError, RecordNotFoundError  # noqa: PLC0415

        found, unresolved = self.resolve_customers(
            tenant=tenant, incident_id=incident_id, records=records, hash_of=hash_of
        )
        if record_ids is not None:
            wanted = set(record_ids)
            found = [record_id for record_id in found if record_id in wanted]
        facts = self.facts(tenant=tenant, incident_id=incident_id)
        drafts = []
        for record_id in found:
            try:
                record = records.read(tenant=tenant, record_id=record_id, only=("full_name",))
            except (RecordErasedError, RecordNotFoundError):
                continue
            name = record.fields.get("full_name")
            drafts.append((record_id, self.customer_notice(facts, customer_name=name or None)))
        return drafts, unresolved

    # ------------------------------------------------------------------ helpers

    def _visible(
        self,
        repo: IncidentRepository,
        tenant: str | None,
        incident_id: str,
        *,
        for_update: bool = False,
    ) -> Incident:
        row = repo.get(incident_id, for_update=for_update) if _is_uuid(incident_id) else None
        if row is None or (tenant is not None and row.tenant not in (None, tenant)):
            raise IncidentNotFoundError("no incident with this id")
        return row

    def _runbook(self, row: Incident) -> Runbook:
        runbook = self.runbooks.get(row.runbook) or self.runbooks.get(self.policy.default_runbook)
        if runbook is None:
            raise RunbookError(f"runbook {row.runbook!r} is not in the runbooks directory")
        return runbook

    def deadlines(self, row: Incident, now: datetime) -> list[Deadline]:
        """The incident's regulatory clocks."""
        clocks = []
        for name, basis, span, met in (
            (
                "authority",
                "GDPR Art. 33(1): notify the supervisory authority",
                self.policy.authority_deadline,
                row.authority_notified_at,
            ),
            (
                "individuals",
                "HIPAA 45 CFR 164.404(b): notify affected individuals",
                self.policy.individuals_deadline,
                row.customers_notified_at,
            ),
        ):
            due = row.became_aware_at + span
            left = int((due - (met or now)).total_seconds())
            clocks.append(
                Deadline(
                    name=name,
                    basis=basis,
                    due_at=due,
                    seconds_left=left,
                    overdue=left < 0,
                    met_at=met,
                )
            )
        return clocks

    def _summary(self, repo: IncidentRepository, row: Incident, now: datetime) -> IncidentSummary:
        return IncidentSummary(
            id=row.id,
            reference=reference(row.number),
            title=row.title,
            rule_id=row.rule_id,
            severity=row.severity,
            status=row.status,
            tenant=row.tenant,
            opened_at=row.opened_at,
            became_aware_at=row.became_aware_at,
            last_event_at=row.last_event_at,
            affected_customers=repo.customer_count(row.id),
            hits=row.hits,
            deadlines=self.deadlines(row, now),
        )

    def _detail(self, repo: IncidentRepository, row: Incident, now: datetime) -> IncidentDetail:
        runbook = self._runbook(row)
        ticked = {step.step_id: step for step in repo.steps(row.id)}
        checklist = []
        for step in runbook.steps:
            done = ticked.get(step.id)
            checklist.append(
                RunbookStepState(
                    id=step.id,
                    phase=step.phase,
                    text=step.text,
                    links=list(step.links),
                    done=done is not None,
                    done_at=done.done_at if done else None,
                    done_by=done.done_by if done else None,
                )
            )
        entity_types = json.loads(row.entity_types)
        summary = self._summary(repo, row, now)
        return IncidentDetail(
            **summary.model_dump(),
            description=row.description,
            group=json.loads(row.group_values),
            entity_types=entity_types,
            data_categories=list(data_categories(entity_types)),
            actions=json.loads(row.actions),
            evidence=Evidence(
                first_seq=row.first_seq,
                last_seq=row.last_seq,
                chain_ok=row.chain_ok,
                chain_detail=row.chain_detail,
                chain_checked_at=row.chain_checked_at,
            ),
            runbook=runbook.name,
            runbook_title=runbook.title,
            checklist=checklist,
            timeline=[_entry(entry) for entry in repo.timeline(row.id)],
            authority_notified_at=row.authority_notified_at,
            customers_notified_at=row.customers_notified_at,
            closed_at=row.closed_at,
        )

    def _measures(self, repo: IncidentRepository, row: Incident) -> tuple[str, ...]:
        runbook = self._runbook(row)
        ticked = {step.step_id for step in repo.steps(row.id)}
        return tuple(
            step.text
            for step in runbook.steps
            if step.id in ticked and step.phase in ("contain", "eradicate", "recover")
        )

    def _facts(self, repo: IncidentRepository, row: Incident) -> NoticeFacts:
        actions = set(json.loads(row.actions))
        affected = repo.customer_count(row.id)
        return NoticeFacts(
            incident_id=reference(row.number),
            title=row.title,
            nature=row.description,
            severity=row.severity,
            became_aware_at=row.became_aware_at,
            first_event_at=row.first_event_at,
            last_event_at=row.last_event_at,
            entity_types=tuple(json.loads(row.entity_types)),
            affected_customers=affected,
            affected_records=affected,
            data_seen_in_clear=bool(actions & _CLEAR_ACTIONS),
            # guard stores every customer record envelope-encrypted (records/, crypto/)
            encrypted_at_rest=True,
            keys_exposed=any(action.startswith("keys.") for action in actions)
            or row.runbook == "data-integrity",
            measures=self._measures(repo, row),
            status=row.status,
            runbook=row.runbook,
        )

    def _register_entry(self, repo: IncidentRepository, row: Incident) -> RegisterEntry:
        return RegisterEntry(
            reference=reference(row.number),
            incident_id=row.id,
            title=row.title,
            rule_id=row.rule_id,
            severity=row.severity,
            status=row.status,
            tenant=row.tenant,
            became_aware_at=row.became_aware_at,
            first_event_at=row.first_event_at,
            last_event_at=row.last_event_at,
            affected_customers=repo.customer_count(row.id),
            data_categories=data_categories(json.loads(row.entity_types)),
            authority_notified_at=row.authority_notified_at,
            customers_notified_at=row.customers_notified_at,
            remedial_actions=self._measures(repo, row),
            closed_at=row.closed_at,
        )


def _entry(entry: IncidentEntry) -> TimelineEntry:
    return TimelineEntry(
        ts=entry.ts,
        kind=entry.kind,
        actor=entry.actor,
        facts=json.loads(entry.facts),
        note=entry.note,
    )


def _is_uuid(value: str) -> bool:
    import uuid  # noqa: PLC0415 - only here

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def match_customers(
    hashes: Iterable[str], record_ids: Iterable[str], hash_of: Callable[[str], str]
) -> tuple[list[str], int]:
    """Record ids whose keyed hash is among ``hashes``, and how many hashes matched none."""
    wanted = set(hashes)
    found = [record_id for record_id in record_ids if hash_of(record_id) in wanted]
    return found, len(wanted) - len(found)


def _record_ids(records: RecordService, tenant: str) -> Iterable[str]:
    cursor: str | None = None
    while True:
        page = records.list_page(tenant=tenant, cursor=cursor, limit=200)
        for record in page.records:
            if record.status == "active":
                yield record.id
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def build_incident_service(
    settings: Settings,
    session_factory: sessionmaker[Session],
    *,
    redact_note: Callable[[str, str | None], str],
) -> IncidentService:
    """An IncidentService over the settings' policy and runbooks (a clear error if one is bad)."""
    from guard.incidents.policy import load_incident_policy  # noqa: PLC0415
    from guard.incidents.runbooks import load_runbooks  # noqa: PLC0415

    return IncidentService(
        session_factory=session_factory,
        policy=load_incident_policy(settings.policies_dir / "incidents.yaml"),
        runbooks=load_runbooks(settings.runbooks_dir),
        templates=settings.runbooks_dir / "notices",
        redact_note=redact_note,
    )


def note_redactor(services: Services) -> Callable[[str, str | None], str]:
    """Redact a note as a message to a customer would be (every detected entity)."""

    def redact_note(text: str, tenant: str | None) -> str:
        # a system-wide incident has no tenant: the default lists of policies/tenants.yaml
        entities = services.analysis.analyze(text, tenant=tenant)
        scope = tenant or "default"
        return services.redactor.redact_text(text, entities, channel="message", tenant=scope).text

    return redact_note
