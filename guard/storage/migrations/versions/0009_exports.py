"""Exports: purpose keys (wrapped) and export manifests.

Revision ID: 0009_exports
Revises: 0008_audit_search_indexes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_exports"
down_revision = "0008_audit_search_indexes"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create export_purpose_keys and export_manifests."""
    op.create_table(
        "export_purpose_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("kek_version", sa.Integer(), nullable=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("shredded_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_export_purpose_keys"),
        sa.UniqueConstraint("tenant", "purpose", "generation", name="uq_export_purpose_generation"),
    )
    op.create_table(
        "export_manifests",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("profile_sha256", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("engine", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rows_in", sa.Integer(), nullable=False),
        sa.Column("rows_out", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_export_manifests"),
    )
    op.create_index(
        "ix_export_manifests_tenant_created", "export_manifests", ["tenant", "created_at"]
    )


def downgrade() -> None:
    """Drop the export tables."""
    op.drop_index("ix_export_manifests_tenant_created", table_name="export_manifests")
    op.drop_table("export_manifests")
    op.drop_table("export_purpose_keys")
