"""Console: server-side sessions of the compliance console.

Revision ID: 0007_console_sessions
Revises: 0005_incidents
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_console_sessions"
down_revision = "0005_incidents"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create console_sessions."""
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("principal_id", sa.String(200), nullable=False),
        sa.Column("principal_name", sa.String(200), nullable=False),
        sa.Column("principal_kind", sa.String(16), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("last_seen_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_console_sessions"),
    )
    op.create_index("ix_console_sessions_expires", "console_sessions", ["expires_at"])


def downgrade() -> None:
    """Drop console_sessions."""
    op.drop_index("ix_console_sessions_expires", table_name="console_sessions")
    op.drop_table("console_sessions")
