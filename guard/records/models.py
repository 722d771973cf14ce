"""ORM table of customer records: ciphertexts, blind indexes and a wrapped data key, no plaintext.

Each record has its own data key, wrapped by the key-encryption key (KEK) version in
``kek_version``. Every field is encrypted under that data key with associated data binding
tenant, record id, field name and ``field_key_version``: the KEK version current when the record
was created. Rotation re-wraps the data key (``kek_version`` changes) without touching any field
ciphertext, so ``field_key_version`` never changes after creation. Erasure deletes the wrapped key
and every ciphertext; the row stays as a tombstone (id, tenant, status, timestamps).
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - SQLAlchemy resolves Mapped[...] at run time

from sqlalchemy import Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from guard.storage.base import Base, UtcDateTime

#: Encrypted field columns, in a stable order (the names are also the AAD field names).
ENCRYPTED_FIELDS: tuple[str, ...] = (
    "full_name",
    "email",
    "phone",
    "postal_address",
    "date_of_birth",
    "account",
    "notes",
    "notes_redacted",
    "extra",
)
#: Blind-index columns and the field each one indexes.
BLIND_INDEXES: dict[str, str] = {
    "email": "email_bi",
    "phone": "phone_bi",
    "account_id": "account_id_bi",
    "full_name": "full_name_bi",
}

STATUS_ACTIVE = "active"
STATUS_ERASED = "erased"


class CustomerRecord(Base):
    """One customer record: encrypted fields, blind indexes, its wrapped data key."""

    __tablename__ = "customer_records"
    __table_args__ = (
        Index("ix_customer_records_tenant_created", "tenant", "created_at", "id"),
        Index("ix_customer_records_tenant_email_bi", "tenant", "email_bi"),
        Index("ix_customer_records_tenant_phone_bi", "tenant", "phone_bi"),
        Index("ix_customer_records_tenant_account_id_bi", "tenant", "account_id_bi"),
        Index("ix_customer_records_tenant_full_name_bi", "tenant", "full_name_bi"),
        Index("ix_customer_records_kek_version", "kek_version"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(63), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    #: When the notes were last written (retention keeps notes N days from this); NULL on rows
    #: written before migration 0010, where ``updated_at`` stands in.
    notes_written_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    kek_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    field_key_version: Mapped[int | None] = mapped_column(Integer, nullable=True)

    full_name: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    email: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    phone: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    postal_address: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    date_of_birth: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    account: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    notes: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    notes_redacted: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    extra: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)

    email_bi: Mapped[str | None] = mapped_column(String(64), nullable=True)
    phone_bi: Mapped[str | None] = mapped_column(String(64), nullable=True)
    account_id_bi: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: Over the normalised full name (see ``normalise_name``); NULL on rows written before
    #: migration 0004 until ``guard records reindex`` has run.
    full_name_bi: Mapped[str | None] = mapped_column(String(64), nullable=True)

    def __repr__(self) -> str:
        return f"CustomerRecord(id={self.id!r}, tenant={self.tenant!r}, status={self.status!r})"
