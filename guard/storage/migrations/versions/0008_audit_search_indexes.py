"""Audit search: (tenant, column, seq) indexes for the console's filtered, keyset-paged search.

An officer's search always names their tenant and pages in seq order (``seq > cursor ORDER BY
seq LIMIT n``). With an equality filter on principal, role, decision or outcome whose value is
rare in the tenant (an admin, a denial, a failure, an error that never happened), neither
database had an index that both finds the matches and keeps them in seq order: they walked
the tenant's events (or the whole chain) in seq order until a page filled, up to a second over
a million events. Each index here is that range: tenant, the filtered column, then seq, so a
page is read from one place in the index whatever the filter matches (bench/console.py,
bench/README.md "Console").

Revision ID: 0008_audit_search_indexes
Revises: 0007_console_sessions
"""

from __future__ import annotations

from alembic import op

revision = "0008_audit_search_indexes"
down_revision = "0007_console_sessions"
branch_labels = None
depends_on = None

_TABLE = "audit_events"
#: Index name -> columns (also read by bench/console.py, which measures with and without them).
#: Order matters on SQLite: without statistics it costs two of these alike for a filter on two
#: of the columns (decision deny + outcome success) and takes the one created last, so the more
#: selective filter in practice comes later: principal, then decision, outcome, role.
INDEXES = {
    f"ix_audit_events_tenant_{column}_seq": ("tenant", column, "seq")
    for column in ("role", "outcome", "decision", "principal")
}


def upgrade() -> None:
    """Create the four (tenant, column, seq) indexes."""
    for name, columns in INDEXES.items():
        op.create_index(name, _TABLE, list(columns))


def downgrade() -> None:
    """Drop them."""
    for name in INDEXES:
        op.drop_index(name, table_name=_TABLE)
