"""ORM tables of the audit trail: append-only events and signed checkpoints."""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - SQLAlchemy reads the annotation at runtime

from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from guard.storage.base import Base, UtcDateTime

#: 64-bit sequence numbers on PostgreSQL; SQLite's INTEGER is already 64-bit.
SeqType = BigInteger().with_variant(Integer(), "sqlite")


class AuditEvent(Base):
    """One audit event; ``hash`` chains it to the previous one, ``hmac`` proves guard wrote it."""

    __tablename__ = "audit_events"
    __table_args__ = (
        CheckConstraint("decision IN ('allow', 'deny')", name="decision"),
        CheckConstraint("outcome IN ('success', 'failure', 'error')", name="outcome"),
        Index("ix_audit_events_ts", "ts"),
        Index("ix_audit_events_principal", "principal"),
        Index("ix_audit_events_tenant", "tenant"),
        Index("ix_audit_events_action", "action"),
        Index("ix_audit_events_customer", "customer"),
        # The console's audit search (migration 0008, which creates them in this order): an
        # officer's tenant and one equality filter whose value may be rare, in seq order (the
        # keyset), so that a page is one index range however few events match.
        Index("ix_audit_events_tenant_role_seq", "tenant", "role", "seq"),
        Index("ix_audit_events_tenant_outcome_seq", "tenant", "outcome", "seq"),
        Index("ix_audit_events_tenant_decision_seq", "tenant", "decision", "seq"),
        Index("ix_audit_events_tenant_principal_seq", "tenant", "principal", "seq"),
    )

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=False)
    ts: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    principal: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str | None] = mapped_column(String(64))
    tenant: Mapped[str | None] = mapped_column(String(63))
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    resource: Mapped[str] = mapped_column(String(200), nullable=False)
    decision: Mapped[str] = mapped_column(String(5), nullable=False)
    outcome: Mapped[str] = mapped_column(String(7), nullable=False)
    request_id: Mapped[str | None] = mapped_column(String(64))
    #: Keyed hash (HMAC) of the customer id the event concerns; never the id itself.
    customer: Mapped[str | None] = mapped_column(String(64))
    entity_counts: Mapped[str] = mapped_column(Text, nullable=False)
    details: Mapped[str] = mapped_column(Text, nullable=False)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hmac: Mapped[str] = mapped_column(String(64), nullable=False)


class AuditCheckpoint(Base):
    """A signed statement that the chain's head was ``head_hash`` at event ``seq``."""

    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=False)
    head_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    ts: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    signature: Mapped[str] = mapped_column(String(128), nullable=False)
    key_id: Mapped[str] = mapped_column(String(32), nullable=False)


class AuditPrune(Base):
    """A signed seal over a removed prefix of the chain: events up to ``seq`` were pruned.

    Retention removes the oldest events; the seal keeps what verification needs to go on from
    ``seq + 1``: the hash of the last removed event (the next event's ``prev_hash``), signed
    with the checkpoint key, and how many events the prefix held.
    """

    __tablename__ = "audit_prunes"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=False)
    head_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    ts: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    #: Events removed by this prune (the prefix since the previous seal).
    events_removed: Mapped[int] = mapped_column(SeqType, nullable=False)
    signature: Mapped[str] = mapped_column(String(128), nullable=False)
    key_id: Mapped[str] = mapped_column(String(32), nullable=False)
