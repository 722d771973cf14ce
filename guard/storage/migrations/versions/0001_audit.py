"""Audit: audit_events and audit_checkpoints, append-only on PostgreSQL.

Revision ID: 0001_audit
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from guard.storage.base import UtcDateTime

revision = "0001_audit"
down_revision = None
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TABLES = ("audit_events", "audit_checkpoints")

# Unqualified names: the function and triggers land in the current schema (per-test schemas too).
_REFUSE_FUNCTION = """
CREATE OR REPLACE FUNCTION guard_audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'guard audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def upgrade() -> None:
    """Create the tables; on PostgreSQL refuse UPDATE, DELETE and TRUNCATE by trigger."""
    op.create_table(
        "audit_events",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=False),
        sa.Column("ts", UtcDateTime(), nullable=False),
        sa.Column("principal", sa.String(200)),
        sa.Column("role", sa.String(64)),
        sa.Column("tenant", sa.String(63)),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("resource", sa.String(200), nullable=False),
        sa.Column("decision", sa.String(5), nullable=False),
        sa.Column("outcome", sa.String(7), nullable=False),
        sa.Column("request_id", sa.String(64)),
        sa.Column("customer", sa.String(64)),
        sa.Column("entity_counts", sa.Text(), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("hmac", sa.String(64), nullable=False),
        sa.CheckConstraint("decision IN ('allow', 'deny')", name="decision"),
        sa.CheckConstraint("outcome IN ('success', 'failure', 'error')", name="outcome"),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_events"),
    )
    for column in ("ts", "principal", "tenant", "action", "customer"):
        op.create_index(f"ix_audit_events_{column}", "audit_events", [column])
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("ts", UtcDateTime(), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_checkpoints"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_REFUSE_FUNCTION)
        for table in _TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION guard_audit_refuse_change()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION guard_audit_refuse_change()"
            )


def downgrade() -> None:
    """Drop the audit tables (and, on PostgreSQL, the refusing function)."""
    op.drop_table("audit_checkpoints")
    for column in ("customer", "action", "tenant", "principal", "ts"):
        op.drop_index(f"ix_audit_events_{column}", table_name="audit_events")
    op.drop_table("audit_events")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS guard_audit_refuse_change()")
