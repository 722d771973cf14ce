"""Subjects: requests, packages, legal holds, retention runs, audit prune seals, notes age.

Data subject requests and their packages, legal holds, retention runs, the seals over pruned
audit prefixes, and when a record's notes were last written.

Revision ID: 0010_subjects
Revises: 0009_exports
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_subjects"
down_revision = "0009_exports"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# PostgreSQL: the audit tables stay append-only (0001_audit), except that a prune may delete
# events and checkpoints up to a seal it wrote in the same transaction: it names the seal's seq
# in the transaction-local setting guard.audit_prune (guard/audit/repository.py,
# delete_through). Updates and truncates are refused as before, and so is any change to a seal.
_REFUSE_UNLESS_SEALED = """
CREATE OR REPLACE FUNCTION guard_audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    sealed bigint := NULLIF(current_setting('guard.audit_prune', true), '')::bigint;
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME IN ('audit_events', 'audit_checkpoints')
            AND sealed IS NOT NULL AND OLD.seq <= sealed
            AND EXISTS (SELECT 1 FROM audit_prunes WHERE seq = sealed) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'guard audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""
# 0001_audit's function, put back by downgrade.
_REFUSE_ALWAYS = """
CREATE OR REPLACE FUNCTION guard_audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'guard audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def upgrade() -> None:
    """Create the subjects, retention and audit-prune tables; add notes_written_at."""
    op.create_table(
        "subject_requests",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("record_id", sa.String(36), nullable=False),
        sa.Column("identity_check", sa.Text(), nullable=False),
        sa.Column("opened_by", sa.String(200), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("opened_at", _TS, nullable=False),
        sa.Column("due_at", _TS, nullable=False),
        sa.Column("extension_reason", sa.Text(), nullable=True),
        sa.Column("closed_at", _TS, nullable=True),
        sa.Column("closed_by", sa.String(200), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_subject_requests"),
    )
    op.create_index(
        "ix_subject_requests_tenant_status_due", "subject_requests", ["tenant", "status", "due_at"]
    )
    op.create_index(
        "ix_subject_requests_tenant_record", "subject_requests", ["tenant", "record_id"]
    )
    op.create_table(
        "subject_packages",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("archive", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["subject_requests.id"],
            name="fk_subject_packages_request_id_subject_requests",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_subject_packages"),
    )
    op.create_index(
        "ix_subject_packages_tenant_expires", "subject_packages", ["tenant", "expires_at"]
    )
    op.create_table(
        "legal_holds",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("target", sa.String(36), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("placed_by", sa.String(200), nullable=False),
        sa.Column("placed_at", _TS, nullable=False),
        sa.Column("released_by", sa.String(200), nullable=True),
        sa.Column("released_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_legal_holds"),
    )
    op.create_index(
        "ix_legal_holds_tenant_scope_target", "legal_holds", ["tenant", "scope", "target"]
    )
    op.create_table(
        "retention_runs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("started_by", sa.String(200), nullable=False),
        sa.Column("as_of", _TS, nullable=False),
        sa.Column("policy_sha256", sa.String(64), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_retention_runs"),
    )
    op.create_index("ix_retention_runs_status_started", "retention_runs", ["status", "started_at"])
    op.create_table(
        "audit_prunes",
        sa.Column("seq", _SEQ, autoincrement=False, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("ts", _TS, nullable=False),
        sa.Column("events_removed", _SEQ, nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_prunes"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_REFUSE_UNLESS_SEALED)
        op.execute(
            "CREATE TRIGGER audit_prunes_append_only BEFORE UPDATE OR DELETE ON audit_prunes "
            "FOR EACH ROW EXECUTE FUNCTION guard_audit_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER audit_prunes_no_truncate BEFORE TRUNCATE ON audit_prunes "
            "FOR EACH STATEMENT EXECUTE FUNCTION guard_audit_refuse_change()"
        )
    with op.batch_alter_table("customer_records") as batch:
        batch.add_column(sa.Column("notes_written_at", _TS, nullable=True))


def downgrade() -> None:
    """Drop what upgrade created."""
    with op.batch_alter_table("customer_records") as batch:
        batch.drop_column("notes_written_at")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_REFUSE_ALWAYS)
    op.drop_table("audit_prunes")
    op.drop_index("ix_retention_runs_status_started", table_name="retention_runs")
    op.drop_table("retention_runs")
    op.drop_index("ix_legal_holds_tenant_scope_target", table_name="legal_holds")
    op.drop_table("legal_holds")
    op.drop_index("ix_subject_packages_tenant_expires", table_name="subject_packages")
    op.drop_table("subject_packages")
    op.drop_index("ix_subject_requests_tenant_record", table_name="subject_requests")
    op.drop_index("ix_subject_requests_tenant_status_due", table_name="subject_requests")
    op.drop_table("subject_requests")
