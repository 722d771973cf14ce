"""All queries of incidents: the scan cursor, deduplication lookups, incidents and their parts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, or_, select, text, update

from guard.incidents.models import (
    ACTIVE_STATUSES,
    Incident,
    IncidentCustomer,
    IncidentEntry,
    IncidentStep,
    ScanCursor,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    from sqlalchemy.orm import Session

CURSOR_NAME = "audit"
#: Advisory lock key of the scanner's writes ("gincscan"), PostgreSQL only.
_SCAN_LOCK_KEY = 0x67696E637363616E


class IncidentRepository:
    """Queries over the incident tables within one session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    # ------------------------------------------------------------------ the scan cursor

    def lock_scanner(self) -> None:
        """Serialise scanners' writes until this transaction ends.

        PostgreSQL: an advisory lock (the cursor row may not exist yet to lock). SQLite: the
        transaction already began with ``BEGIN IMMEDIATE``.
        """
        if self._session.get_bind().dialect.name == "postgresql":
            self._session.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCAN_LOCK_KEY}
            )

    def cursor(self, *, for_update: bool = False) -> ScanCursor | None:
        """The scanner's cursor row (locked for the transaction with ``for_update``)."""
        query = select(ScanCursor).where(ScanCursor.name == CURSOR_NAME)
        if for_update:
            query = query.with_for_update()
        return self._session.execute(query).scalar_one_or_none()

    def save_cursor(self, *, last_seq: int, now: datetime, fingerprint: str) -> None:
        """Move the cursor to ``last_seq`` (created on first use)."""
        row = self.cursor()
        if row is None:
            self._session.add(
                ScanCursor(
                    name=CURSOR_NAME,
                    last_seq=last_seq,
                    updated_at=now,
                    rules_fingerprint=fingerprint,
                )
            )
        else:
            row.last_seq, row.updated_at, row.rules_fingerprint = last_seq, now, fingerprint
        self._session.flush()

    # ------------------------------------------------------------------ incidents

    def active_for(self, rule_id: str, group_key: str) -> Incident | None:
        """The newest incident of this rule and group that is still being worked."""
        return self._session.execute(
            select(Incident)
            .where(
                Incident.rule_id == rule_id,
                Incident.group_key == group_key,
                Incident.status.in_(ACTIVE_STATUSES),
            )
            .order_by(Incident.last_event_at.desc())
            .limit(1)
        ).scalar_one_or_none()

    def next_number(self) -> int:
        """The next incident number (under the scanner's cursor lock: one writer at a time)."""
        current = self._session.execute(select(func.max(Incident.number))).scalar_one_or_none()
        return (current or 0) + 1

    def add(self, incident: Incident) -> Incident:
        """Insert an incident."""
        self._session.add(incident)
        self._session.flush()
        return incident

    def get(self, incident_id: str, *, for_update: bool = False) -> Incident | None:
        """The incident with this id, or None."""
        query = select(Incident).where(Incident.id == incident_id)
        if for_update:
            query = query.with_for_update()
        return self._session.execute(query).scalar_one_or_none()

    def search(
        self,
        *,
        tenant: str | None,
        status: str | None = None,
        severity: str | None = None,
        rule_id: str | None = None,
        opened_since: datetime | None = None,
        opened_until: datetime | None = None,
        after_number: int = 0,
        limit: int = 100,
    ) -> Sequence[Incident]:
        """Incidents visible in ``tenant`` (its own and system-wide ones), newest first by number.

        ``tenant`` None lists every incident (operators on the command line).
        """
        query = select(Incident)
        if tenant is not None:
            query = query.where(or_(Incident.tenant == tenant, Incident.tenant.is_(None)))
        for column, value in (
            (Incident.status, status),
            (Incident.severity, severity),
            (Incident.rule_id, rule_id),
        ):
            if value is not None:
                query = query.where(column == value)
        if opened_since is not None:
            query = query.where(Incident.opened_at >= opened_since)
        if opened_until is not None:
            query = query.where(Incident.opened_at < opened_until)
        if after_number:
            query = query.where(Incident.number < after_number)
        query = query.order_by(Incident.number.desc()).limit(limit)
        return self._session.execute(query).scalars().all()

    def set_status(self, incident_id: str, status: str, *, now: datetime) -> None:
        """Change an incident's status (the service checks the transition)."""
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if status == "closed":
            values["closed_at"] = now
        self._session.execute(update(Incident).where(Incident.id == incident_id).values(**values))

    def unverified(self) -> Sequence[Incident]:
        """Incidents whose evidence is not verified yet (oldest first)."""
        return (
            self._session.execute(
                select(Incident).where(Incident.chain_ok.is_(None)).order_by(Incident.number)
            )
            .scalars()
            .all()
        )

    def seal(self, incident_id: str, *, ok: bool, detail: str, now: datetime) -> None:
        """Record the verification of an incident's evidence."""
        self._session.execute(
            update(Incident)
            .where(Incident.id == incident_id)
            .values(chain_ok=ok, chain_detail=detail, chain_checked_at=now)
        )

    # ------------------------------------------------------------------ parts

    def add_entry(self, entry: IncidentEntry) -> None:
        """Append a timeline entry."""
        self._session.add(entry)
        self._session.flush()

    def timeline(self, incident_id: str) -> Sequence[IncidentEntry]:
        """The incident's timeline, oldest first."""
        return (
            self._session.execute(
                select(IncidentEntry)
                .where(IncidentEntry.incident_id == incident_id)
                .order_by(IncidentEntry.id)
            )
            .scalars()
            .all()
        )

    def add_customers(self, incident_id: str, customers: Iterable[tuple[str, int]]) -> int:
        """Record affected customers (hash, first seq) not yet recorded; return how many new."""
        wanted = dict(customers)
        if not wanted:
            return 0
        known = set(
            self._session.execute(
                select(IncidentCustomer.customer_hash).where(
                    IncidentCustomer.incident_id == incident_id,
                    IncidentCustomer.customer_hash.in_(list(wanted)),
                )
            ).scalars()
        )
        new = [
            IncidentCustomer(incident_id=incident_id, customer_hash=h, first_seq=seq)
            for h, seq in wanted.items()
            if h not in known
        ]
        self._session.add_all(new)
        self._session.flush()
        return len(new)

    def customer_hashes(self, incident_id: str) -> list[str]:
        """The keyed hashes of the incident's affected customers."""
        return list(
            self._session.execute(
                select(IncidentCustomer.customer_hash)
                .where(IncidentCustomer.incident_id == incident_id)
                .order_by(IncidentCustomer.first_seq, IncidentCustomer.customer_hash)
            ).scalars()
        )

    def customer_count(self, incident_id: str) -> int:
        """How many customers the incident's events concern."""
        return self._session.execute(
            select(func.count())
            .select_from(IncidentCustomer)
            .where(IncidentCustomer.incident_id == incident_id)
        ).scalar_one()

    def steps(self, incident_id: str) -> Sequence[IncidentStep]:
        """The incident's ticked runbook steps."""
        return (
            self._session.execute(
                select(IncidentStep).where(IncidentStep.incident_id == incident_id)
            )
            .scalars()
            .all()
        )

    def tick(self, incident_id: str, step_id: str, *, by: str, now: datetime) -> bool:
        """Tick a step; False if it was already ticked."""
        exists = self._session.get(IncidentStep, (incident_id, step_id))
        if exists is not None:
            return False
        self._session.add(
            IncidentStep(incident_id=incident_id, step_id=step_id, done_at=now, done_by=by)
        )
        self._session.flush()
        return True

    def untick(self, incident_id: str, step_id: str) -> bool:
        """Untick a step; False if it was not ticked."""
        result = self._session.execute(
            delete(IncidentStep).where(
                IncidentStep.incident_id == incident_id, IncidentStep.step_id == step_id
            )
        )
        return bool(getattr(result, "rowcount", 0))

    def mark_notified(self, incident_id: str, party: str, *, now: datetime) -> None:
        """Record that the authority or the customers were notified."""
        column = "authority_notified_at" if party == "authority" else "customers_notified_at"
        self._session.execute(
            update(Incident)
            .where(Incident.id == incident_id)
            .values({column: now, "updated_at": now})
        )
