"""All queries of the audit trail: append under the chain lock, stream, search, checkpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import delete, func, insert, or_, select, text
from sqlalchemy.orm import Session

from guard.audit.models import AuditCheckpoint, AuditEvent, AuditPrune

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from datetime import datetime

    from sqlalchemy import Connection, Row, Select, Table

    from guard.audit.schemas import AuditFilters

#: Advisory lock class id for the audit chain ("gaud"); the object id is the table's oid, so
#: separate schemas (one per test, one per deployment) do not block each other.
_CHAIN_LOCK_CLASS = 0x67617564

_EVENTS = cast("Table", AuditEvent.__table__)
_CHECKPOINTS = cast("Table", AuditCheckpoint.__table__)
_PRUNES = cast("Table", AuditPrune.__table__)


class AuditRepository:
    """Queries over audit_events and audit_checkpoints within one session (or connection).

    The audit writer passes a connection of its own (see :mod:`guard.audit.writer`).
    """

    def __init__(self, session: Session | Connection) -> None:
        self._session = session

    def _dialect_name(self) -> str:
        session = self._session
        bind = session.get_bind() if isinstance(session, Session) else session
        return str(bind.dialect.name)

    def lock_chain(self) -> None:
        """Serialise appenders until this transaction ends (PostgreSQL advisory lock).

        On SQLite the session's transaction already began with ``BEGIN IMMEDIATE``.
        """
        if self._dialect_name() == "postgresql":
            self._session.execute(
                text(
                    "SELECT pg_advisory_xact_lock(:cls, "
                    "CAST(CAST(CAST('audit_events' AS regclass) AS oid) AS integer))"
                ),
                {"cls": _CHAIN_LOCK_CLASS},
            )

    def head(self) -> tuple[int, str] | None:
        """(seq, hash) of the newest event, or None for an empty chain."""
        row = self._session.execute(
            select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
        ).first()
        return None if row is None else (row.seq, row.hash)

    def head_state(self) -> tuple[int, str, datetime] | None:
        """(seq, hash, ts) of the newest event, or None for an empty chain."""
        row = self._session.execute(
            select(AuditEvent.seq, AuditEvent.hash, AuditEvent.ts)
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        ).first()
        return None if row is None else (row.seq, row.hash, row.ts)

    def last_checkpoint(self) -> tuple[int, datetime] | None:
        """(seq, ts) of the newest checkpoint, or None."""
        row = self._session.execute(
            select(AuditCheckpoint.seq, AuditCheckpoint.ts)
            .order_by(AuditCheckpoint.seq.desc())
            .limit(1)
        ).first()
        return None if row is None else (row.seq, row.ts)

    def first_event_ts(self) -> datetime | None:
        """Timestamp of event 1 (the reference time before the first checkpoint)."""
        return self._session.execute(
            select(AuditEvent.ts).order_by(AuditEvent.seq).limit(1)
        ).scalar_one_or_none()

    def insert_event(self, row: dict[str, Any]) -> None:
        """Insert one sealed event row."""
        self._session.execute(insert(_EVENTS), [row])

    def insert_events(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert many sealed event rows in one statement batch (bulk loads, benchmarks)."""
        if rows:
            self._session.execute(insert(_EVENTS), list(rows))

    def insert_checkpoint(self, row: dict[str, Any]) -> None:
        """Insert one signed checkpoint row."""
        self._session.execute(insert(_CHECKPOINTS), [row])

    def count_events(self) -> int:
        """Number of events stored."""
        return self._session.execute(select(func.count()).select_from(_EVENTS)).scalar_one()

    def stream_events(
        self, *, batch_size: int, after_seq: int = 0, until_seq: int | None = None
    ) -> Iterator[Row[Any]]:
        """Events after ``after_seq`` (up to ``until_seq``) in seq order, in keyset batches."""
        last = after_seq
        while True:
            query = select(_EVENTS).where(_EVENTS.c.seq > last)
            if until_seq is not None:
                query = query.where(_EVENTS.c.seq <= until_seq)
            rows = self._session.execute(query.order_by(_EVENTS.c.seq).limit(batch_size)).all()
            yield from rows
            if len(rows) < batch_size:
                return
            last = rows[-1].seq

    def events_after(self, after_seq: int, *, limit: int) -> Sequence[Row[Any]]:
        """At most ``limit`` events after ``after_seq``, in seq order (one keyset batch)."""
        return self._session.execute(
            select(_EVENTS).where(_EVENTS.c.seq > after_seq).order_by(_EVENTS.c.seq).limit(limit)
        ).all()

    def events_between(self, first_seq: int, last_seq: int) -> Sequence[Row[Any]]:
        """Events ``first_seq``..``last_seq`` inclusive, in seq order (a bounded range)."""
        return self._session.execute(
            select(_EVENTS)
            .where(_EVENTS.c.seq >= first_seq, _EVENTS.c.seq <= last_seq)
            .order_by(_EVENTS.c.seq)
        ).all()

    def head_row(self) -> tuple[int, datetime] | None:
        """(seq, ts) of the newest event, or None."""
        row = self._session.execute(
            select(AuditEvent.seq, AuditEvent.ts).order_by(AuditEvent.seq.desc()).limit(1)
        ).first()
        return None if row is None else (row.seq, row.ts)

    def latest(self, action: str, *, tenant: str | None = None) -> AuditEvent | None:
        """The newest event of ``action`` (of ``tenant``, or with no tenant, when given)."""
        query = select(AuditEvent).where(AuditEvent.action == action)
        if tenant is not None:
            query = query.where(or_(AuditEvent.tenant == tenant, AuditEvent.tenant.is_(None)))
        return self._session.execute(
            query.order_by(AuditEvent.seq.desc()).limit(1)
        ).scalar_one_or_none()

    def latest_seq(self, action: str, *, outcome: str) -> int | None:
        """The seq of the newest event of ``action`` with ``outcome``, or None."""
        return self._session.execute(
            select(func.max(AuditEvent.seq)).where(
                AuditEvent.action == action, AuditEvent.outcome == outcome
            )
        ).scalar_one_or_none()

    def since(
        self,
        since: datetime,
        *,
        tenant: str,
        decision: str | None = None,
        action: str | None = None,
    ) -> Sequence[Any]:
        """(ts, action, decision, details) of a tenant's events since ``since`` (a day's chart)."""
        query = select(AuditEvent.ts, AuditEvent.action, AuditEvent.decision, AuditEvent.details)
        query = query.where(AuditEvent.ts >= since, AuditEvent.tenant == tenant)
        if decision is not None:
            query = query.where(AuditEvent.decision == decision)
        if action is not None:
            query = query.where(AuditEvent.action == action)
        return self._session.execute(query).all()

    def checkpoints_between(self, first_seq: int, last_seq: int) -> Sequence[Row[Any]]:
        """Checkpoints at seq ``first_seq``..``last_seq``, in seq order."""
        return self._session.execute(
            select(_CHECKPOINTS)
            .where(_CHECKPOINTS.c.seq >= first_seq, _CHECKPOINTS.c.seq <= last_seq)
            .order_by(_CHECKPOINTS.c.seq)
        ).all()

    def checkpoints(self) -> Sequence[Row[Any]]:
        """Every checkpoint in seq order."""
        return self._session.execute(select(_CHECKPOINTS).order_by(_CHECKPOINTS.c.seq)).all()

    # ---------------------------------------------------------------- pruning, for retention

    def prunes(self) -> Sequence[Row[Any]]:
        """Every prune seal in seq order (each removed the events after the one before it)."""
        return self._session.execute(select(_PRUNES).order_by(_PRUNES.c.seq)).all()

    def last_prune(self) -> Row[Any] | None:
        """The newest prune seal, or None when nothing was ever pruned."""
        return self._session.execute(
            select(_PRUNES).order_by(_PRUNES.c.seq.desc()).limit(1)
        ).first()

    def prefix_rows(self, after_seq: int, *, limit: int) -> Sequence[Row[Any]]:
        """(seq, ts, tenant, customer) of at most ``limit`` events after ``after_seq``, in order.

        What retention needs to decide how far the prunable prefix reaches, and nothing more.
        """
        return self._session.execute(
            select(_EVENTS.c.seq, _EVENTS.c.ts, _EVENTS.c.tenant, _EVENTS.c.customer)
            .where(_EVENTS.c.seq > after_seq)
            .order_by(_EVENTS.c.seq)
            .limit(limit)
        ).all()

    def insert_prune(self, row: dict[str, Any]) -> None:
        """Insert one signed prune seal row."""
        self._session.execute(insert(_PRUNES), [row])

    def delete_through(self, seq: int) -> int:
        """Delete the events and checkpoints up to ``seq``; how many events went.

        Call it in the transaction that inserted the seal at ``seq``: on PostgreSQL the
        append-only trigger lets a DELETE through only below a seal this transaction names
        (``guard.audit_prune``, set here for this transaction alone).
        """
        if self._dialect_name() == "postgresql":
            self._session.execute(
                text("SELECT set_config('guard.audit_prune', :seq, true)"), {"seq": str(seq)}
            )
        self._session.execute(delete(_CHECKPOINTS).where(_CHECKPOINTS.c.seq <= seq))
        result = self._session.execute(delete(_EVENTS).where(_EVENTS.c.seq <= seq))
        return int(result.rowcount)  # type: ignore[attr-defined]

    @staticmethod
    def _filtered(
        query: Select[Any], filters: AuditFilters, customer_hash: str | None
    ) -> Select[Any]:
        if filters.since is not None:
            query = query.where(AuditEvent.ts >= filters.since)
        if filters.until is not None:
            query = query.where(AuditEvent.ts < filters.until)
        for column, value in (
            (AuditEvent.principal, filters.principal),
            (AuditEvent.role, filters.role),
            (AuditEvent.tenant, filters.tenant),
            (AuditEvent.action, filters.action),
            (AuditEvent.decision, filters.decision),
            (AuditEvent.outcome, filters.outcome),
            (AuditEvent.request_id, filters.request_id),
            (AuditEvent.customer, customer_hash),
        ):
            if value is not None:
                query = query.where(column == value)
        return query

    def search(
        self,
        filters: AuditFilters,
        *,
        customer_hash: str | None,
        limit: int,
        after_seq: int = 0,
    ) -> Sequence[AuditEvent]:
        """Events matching ``filters`` with seq > ``after_seq``, in seq order, at most ``limit``.

        A time range is also a seq range (an event's ts is taken under the chain lock and never
        goes back, see :class:`~guard.audit.writer.ChainWriter`): its bounds are looked up on
        the ts index, so a page starts where the range starts instead of walking the chain to it.
        """
        query = self._filtered(select(AuditEvent), filters, customer_hash)
        if filters.since is not None:
            first = self._first_seq_at(filters.since)
            if first is None:
                return []
            after_seq = max(after_seq, first - 1)
        if filters.until is not None:
            end = self._first_seq_at(filters.until)
            if end is not None:
                query = query.where(AuditEvent.seq < end)
        query = query.where(AuditEvent.seq > after_seq).order_by(AuditEvent.seq).limit(limit)
        return self._session.execute(query).scalars().all()

    def _first_seq_at(self, ts: datetime) -> int | None:
        """The first seq whose ts is ``ts`` or later (None: later than the head)."""
        return self._session.execute(
            select(AuditEvent.seq)
            .where(AuditEvent.ts >= ts)
            .order_by(AuditEvent.ts, AuditEvent.seq)
            .limit(1)
        ).scalar_one_or_none()
