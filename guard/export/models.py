"""ORM tables of the export path: purpose keys (wrapped) and export manifests.

A purpose key is 32 random bytes per tenant and export purpose, stored only wrapped under the
key-encryption key (the same envelope as customer data keys). Shredding deletes the wrapped
key: every pseudonym and token made under it becomes unlinkable. A manifest is what an export
did (profile, counts, checksums, column decisions): no cell values, no key material.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - SQLAlchemy resolves Mapped[...] at run time

from sqlalchemy import Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from guard.storage.base import Base, UtcDateTime


class ExportPurposeKey(Base):
    """One generation of a tenant's key for one export purpose."""

    __tablename__ = "export_purpose_keys"
    __table_args__ = (
        UniqueConstraint("tenant", "purpose", "generation", name="uq_export_purpose_generation"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(63), nullable=False)
    purpose: Mapped[str] = mapped_column(String(64), nullable=False)
    #: 1, 2, ...: a purpose shredded and used again gets a new generation (and new pseudonyms).
    generation: Mapped[int] = mapped_column(Integer, nullable=False)
    kek_version: Mapped[int | None] = mapped_column(Integer)
    #: None once shredded.
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    shredded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ExportManifest(Base):
    """What one export did, under which rules, by whom; referenced by its audit event."""

    __tablename__ = "export_manifests"
    __table_args__ = (Index("ix_export_manifests_tenant_created", "tenant", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(63), nullable=False)
    principal: Mapped[str] = mapped_column(String(200), nullable=False)
    profile: Mapped[str] = mapped_column(String(64), nullable=False)
    profile_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    purpose: Mapped[str] = mapped_column(String(64), nullable=False)
    engine: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    rows_in: Mapped[int] = mapped_column(Integer, nullable=False)
    rows_out: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    #: The manifest document (canonical JSON) and its sha256, which the audit event carries.
    document: Mapped[str] = mapped_column(Text, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
