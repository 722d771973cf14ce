"""ORM tables of incidents: the incident, its timeline, affected customers, checklist, cursor.

No table here holds customer data in clear: affected customers are the audit trail's keyed
hashes, group values are what the audit trail already holds (principals, key prefixes, hashes),
and officers' notes are redacted before they are stored.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - SQLAlchemy resolves Mapped[...] at run time

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from guard.storage.base import Base, UtcDateTime

SeqType = BigInteger().with_variant(Integer(), "sqlite")

#: The life of an incident, in order; a transition only ever moves forward.
STATUSES: tuple[str, ...] = ("open", "triaged", "contained", "resolved", "closed")
#: Statuses in which a new matching hit updates the incident instead of opening another.
ACTIVE_STATUSES: tuple[str, ...] = ("open", "triaged", "contained")
SEVERITIES: tuple[str, ...] = ("informational", "low", "medium", "high", "critical")


class Incident(Base):
    """One incident: what a rule found, its status, clock, evidence and affected customers."""

    __tablename__ = "incidents"
    __table_args__ = (
        CheckConstraint(
            "status IN ('open', 'triaged', 'contained', 'resolved', 'closed')", name="status"
        ),
        Index("ix_incidents_dedup", "rule_id", "group_key", "status"),
        Index("ix_incidents_opened", "opened_at"),
        Index("ix_incidents_tenant_status", "tenant", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    #: A short human reference, "INC-" + a sequence number per database.
    number: Mapped[int] = mapped_column(Integer, nullable=False, unique=True)
    tenant: Mapped[str | None] = mapped_column(String(63))
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    rule_id: Mapped[str] = mapped_column(String(64), nullable=False)
    rule_title: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False)
    severity: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    #: sha256 over the rule id, tenant and group-by values: the deduplication key.
    group_key: Mapped[str] = mapped_column(String(64), nullable=False)
    #: The group-by values as canonical JSON (principal, key prefix, customer hash ...).
    group_values: Mapped[str] = mapped_column(Text, nullable=False)
    runbook: Mapped[str] = mapped_column(String(64), nullable=False)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    #: When guard became aware (GDPR Art. 33(1)): the moment the incident was opened.
    became_aware_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    first_event_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    last_event_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    first_seq: Mapped[int] = mapped_column(SeqType, nullable=False)
    last_seq: Mapped[int] = mapped_column(SeqType, nullable=False)
    #: How many times the rule matched (a burst updates one incident).
    hits: Mapped[int] = mapped_column(Integer, nullable=False)
    #: JSON lists: entity types in the events (data categories) and the actions involved.
    entity_types: Mapped[str] = mapped_column(Text, nullable=False)
    actions: Mapped[str] = mapped_column(Text, nullable=False)
    #: Evidence: the chain verified over the incident's events right after it was opened
    #: (None: not yet; the scanner seals the evidence after each pass).
    chain_ok: Mapped[bool | None] = mapped_column(Boolean)
    chain_checked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    chain_detail: Mapped[str] = mapped_column(String(200), nullable=False)
    authority_notified_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    customers_notified_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class IncidentEntry(Base):
    """One line of an incident's timeline: opened, new events, transition, note, step, notice."""

    __tablename__ = "incident_timeline"
    __table_args__ = (Index("ix_incident_timeline_incident", "incident_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False
    )
    ts: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    actor: Mapped[str | None] = mapped_column(String(200))
    #: Short structured facts (statuses, step id, seq range) as canonical JSON.
    facts: Mapped[str] = mapped_column(Text, nullable=False)
    #: An officer's note, redacted before it is stored.
    note: Mapped[str | None] = mapped_column(Text)


class IncidentCustomer(Base):
    """A customer an incident's events concern, as the audit trail's keyed hash."""

    __tablename__ = "incident_customers"

    incident_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    customer_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_seq: Mapped[int] = mapped_column(SeqType, nullable=False)


class IncidentStep(Base):
    """A ticked runbook step of an incident."""

    __tablename__ = "incident_steps"

    incident_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    step_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    done_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    done_by: Mapped[str] = mapped_column(String(200), nullable=False)


class ScanCursor(Base):
    """How far the scanner has read the audit trail (each event is evaluated once)."""

    __tablename__ = "incident_scan_cursor"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_seq: Mapped[int] = mapped_column(SeqType, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    rules_fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
