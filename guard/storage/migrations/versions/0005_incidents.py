"""Incidents: incidents, their timeline, affected customers, ticked steps and the scan cursor.

Revision ID: 0005_incidents
Revises: 0004_full_name_index
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_incidents"
down_revision = "0004_full_name_index"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the incident tables and their indexes."""
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(63), nullable=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("rule_title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("group_key", sa.String(64), nullable=False),
        sa.Column("group_values", sa.Text(), nullable=False),
        sa.Column("runbook", sa.String(64), nullable=False),
        sa.Column("opened_at", _TS, nullable=False),
        sa.Column("became_aware_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("first_event_at", _TS, nullable=False),
        sa.Column("last_event_at", _TS, nullable=False),
        sa.Column("first_seq", _SEQ, nullable=False),
        sa.Column("last_seq", _SEQ, nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("entity_types", sa.Text(), nullable=False),
        sa.Column("actions", sa.Text(), nullable=False),
        sa.Column("chain_ok", sa.Boolean(), nullable=True),
        sa.Column("chain_checked_at", _TS, nullable=True),
        sa.Column("chain_detail", sa.String(200), nullable=False),
        sa.Column("authority_notified_at", _TS, nullable=True),
        sa.Column("customers_notified_at", _TS, nullable=True),
        sa.Column("closed_at", _TS, nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'triaged', 'contained', 'resolved', 'closed')",
            name="ck_incidents_status",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_incidents"),
        sa.UniqueConstraint("number", name="uq_incidents_number"),
    )
    op.create_index("ix_incidents_dedup", "incidents", ["rule_id", "group_key", "status"])
    op.create_index("ix_incidents_opened", "incidents", ["opened_at"])
    op.create_index("ix_incidents_tenant_status", "incidents", ["tenant", "status"])
    op.create_table(
        "incident_timeline",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.String(36), nullable=False),
        sa.Column("ts", _TS, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(200), nullable=True),
        sa.Column("facts", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name="fk_incident_timeline_incident_id_incidents",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_incident_timeline"),
    )
    op.create_index("ix_incident_timeline_incident", "incident_timeline", ["incident_id", "id"])
    op.create_table(
        "incident_customers",
        sa.Column("incident_id", sa.String(36), nullable=False),
        sa.Column("customer_hash", sa.String(64), nullable=False),
        sa.Column("first_seq", _SEQ, nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name="fk_incident_customers_incident_id_incidents",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("incident_id", "customer_hash", name="pk_incident_customers"),
    )
    op.create_table(
        "incident_steps",
        sa.Column("incident_id", sa.String(36), nullable=False),
        sa.Column("step_id", sa.String(64), nullable=False),
        sa.Column("done_at", _TS, nullable=False),
        sa.Column("done_by", sa.String(200), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name="fk_incident_steps_incident_id_incidents",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("incident_id", "step_id", name="pk_incident_steps"),
    )
    op.create_table(
        "incident_scan_cursor",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("last_seq", _SEQ, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("rules_fingerprint", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_incident_scan_cursor"),
    )


def downgrade() -> None:
    """Drop the incident tables."""
    op.drop_table("incident_scan_cursor")
    op.drop_table("incident_steps")
    op.drop_table("incident_customers")
    op.drop_index("ix_incident_timeline_incident", table_name="incident_timeline")
    op.drop_table("incident_timeline")
    op.drop_index("ix_incidents_tenant_status", table_name="incidents")
    op.drop_index("ix_incidents_opened", table_name="incidents")
    op.drop_index("ix_incidents_dedup", table_name="incidents")
    op.drop_table("incidents")
