"""Records: customer_records (ciphertexts, blind indexes, wrapped data key; no plaintext).

Revision ID: 0003_records
Revises: 0002_access
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_records"
down_revision = "0002_access"
branch_labels = None
depends_on = None

_ENCRYPTED = (
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
_INDEXES = {
    "ix_customer_records_tenant_created": ["tenant", "created_at", "id"],
    "ix_customer_records_tenant_email_bi": ["tenant", "email_bi"],
    "ix_customer_records_tenant_phone_bi": ["tenant", "phone_bi"],
    "ix_customer_records_tenant_account_id_bi": ["tenant", "account_id_bi"],
    "ix_customer_records_kek_version": ["kek_version"],
}


def upgrade() -> None:
    """Create customer_records and its per-tenant indexes."""
    op.create_table(
        "customer_records",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("kek_version", sa.Integer(), nullable=True),
        sa.Column("field_key_version", sa.Integer(), nullable=True),
        *(sa.Column(name, sa.LargeBinary(), nullable=True) for name in _ENCRYPTED),
        sa.Column("email_bi", sa.String(64), nullable=True),
        sa.Column("phone_bi", sa.String(64), nullable=True),
        sa.Column("account_id_bi", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_customer_records"),
    )
    for name, columns in _INDEXES.items():
        op.create_index(name, "customer_records", columns)


def downgrade() -> None:
    """Drop customer_records and its indexes."""
    for name in _INDEXES:
        op.drop_index(name, table_name="customer_records")
    op.drop_table("customer_records")
