"""ORM tables of data subject requests, their delivery packages, legal holds and retention runs.

None of them holds a customer's data in clear: a request names its customer by record id (a
random UUID), the identity check an officer states is redacted before it is stored, and a
package is stored only as the archive encrypted for delivery (its passphrase is never stored).
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - SQLAlchemy resolves Mapped[...] at run time

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from guard.storage.base import Base, UtcDateTime

REQUEST_KINDS = ("access", "portability", "erasure")
REQUEST_STATUSES = ("open", "fulfilled", "rejected")


class SubjectRequest(Base):
    """One request from a customer: access (Art. 15), portability (Art. 20) or erasure (Art. 17)."""

    __tablename__ = "subject_requests"
    __table_args__ = (
        Index("ix_subject_requests_tenant_status_due", "tenant", "status", "due_at"),
        Index("ix_subject_requests_tenant_record", "tenant", "record_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(63), nullable=False)
    #: access | portability | erasure
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    #: open | fulfilled | rejected
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    #: The customer record the request is about (found through the blind indexes).
    record_id: Mapped[str] = mapped_column(String(36), nullable=False)
    #: How the officer checked the requester's identity, redacted before it is stored.
    identity_check: Mapped[str] = mapped_column(Text, nullable=False)
    opened_by: Mapped[str] = mapped_column(String(200), nullable=False)
    #: When the request was received (may be earlier than when it was entered).
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    #: One month after receipt (GDPR Art. 12(3)), or later once extended.
    due_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    #: Why the deadline was extended (by up to two further months), redacted; None if not.
    extension_reason: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    closed_by: Mapped[str | None] = mapped_column(String(200))
    #: What was done or why not, redacted (e.g. "package delivered", "erased").
    outcome: Mapped[str | None] = mapped_column(Text)


class SubjectPackage(Base):
    """A request's answer: the archive encrypted for delivery, and its checksum."""

    __tablename__ = "subject_packages"
    __table_args__ = (Index("ix_subject_packages_tenant_expires", "tenant", "expires_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("subject_requests.id", ondelete="CASCADE"), nullable=False
    )
    tenant: Mapped[str] = mapped_column(String(63), nullable=False)
    created_by: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    #: The package is deleted after this (policies/retention.yaml, ``subject_packages``).
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    #: The encrypted archive; the passphrase is shown once and never stored.
    archive: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)


class LegalHold(Base):
    """A hold on a customer or an incident: retention removes nothing it covers until released."""

    __tablename__ = "legal_holds"
    __table_args__ = (Index("ix_legal_holds_tenant_scope_target", "tenant", "scope", "target"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(63), nullable=False)
    #: customer (target = record id) | incident (target = incident id)
    scope: Mapped[str] = mapped_column(String(16), nullable=False)
    target: Mapped[str] = mapped_column(String(36), nullable=False)
    #: Why (a matter, a request from counsel), redacted before it is stored.
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    placed_by: Mapped[str] = mapped_column(String(200), nullable=False)
    placed_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    released_by: Mapped[str | None] = mapped_column(String(200))
    released_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class RetentionRun(Base):
    """One retention run: its plan, how far it got (resumable), and what it removed."""

    __tablename__ = "retention_runs"
    __table_args__ = (Index("ix_retention_runs_status_started", "status", "started_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    #: running | finished | failed
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    #: Who started it (``scheduler`` for the one inside ``guard serve``).
    started_by: Mapped[str] = mapped_column(String(200), nullable=False)
    #: The cut-off instant every rule was evaluated at: a resumed run keeps it, so it removes
    #: exactly what the interrupted run would have.
    as_of: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    #: sha256 of the canonical retention policy the run applies.
    policy_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    #: JSON: where each phase got to (e.g. the last record id handled).
    cursor: Mapped[str] = mapped_column(Text, nullable=False)
    #: JSON: counts removed so far, per tenant and kind.
    counts: Mapped[str] = mapped_column(Text, nullable=False)
