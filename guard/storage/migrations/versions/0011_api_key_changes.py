"""Access: api_key_changes, a counter of changes to api_keys kept by triggers.

Every UPDATE or DELETE on api_keys (a revocation above all, whoever makes it: the API, the CLI
on another host, an operator in SQL) adds one to the single row's ``version`` in the same
transaction. Processes that remember keys they verified compare the version on each request
(guard/access/apikeys.py). Inserts are not counted: a new key is never remembered before it is
read.

Revision ID: 0011_api_key_changes
Revises: 0010_subjects
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_api_key_changes"
down_revision = "0010_subjects"
branch_labels = None
depends_on = None

_COUNT = "UPDATE api_key_changes SET version = version + 1 WHERE id = 1"
# Unqualified names: the function and triggers land in the current schema (per-test schemas too).
_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION guard_api_keys_count_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    {_COUNT};
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    """Create the counter (one row, version 0) and the triggers that keep it."""
    op.create_table(
        "api_key_changes",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("version", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_api_key_changes"),
    )
    op.execute("INSERT INTO api_key_changes (id, version) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER api_keys_count_change AFTER UPDATE OR DELETE OR TRUNCATE "
            "ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION guard_api_keys_count_change()"
        )
        return
    for operation in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER api_keys_count_{operation.lower()} AFTER {operation} ON api_keys "
            f"BEGIN {_COUNT}; END"
        )


def downgrade() -> None:
    """Drop the triggers, the function (PostgreSQL) and the counter."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS api_keys_count_change ON api_keys")
        op.execute("DROP FUNCTION IF EXISTS guard_api_keys_count_change()")
    else:
        for operation in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS api_keys_count_{operation}")
    op.drop_table("api_key_changes")
