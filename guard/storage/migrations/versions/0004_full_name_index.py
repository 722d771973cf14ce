"""Records: full_name_bi, a blind index over the normalised full name, and its tenant index.

Rows written before this revision get NULL and are indexed afterwards by the resumable
``guard records reindex`` (the index is an HMAC of the decrypted name, so SQL cannot fill it).

Revision ID: 0004_full_name_index
Revises: 0003_records
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_full_name_index"
down_revision = "0003_records"
branch_labels = None
depends_on = None

_TABLE = "customer_records"
_COLUMN = "full_name_bi"
_INDEX = "ix_customer_records_tenant_full_name_bi"


def upgrade() -> None:
    """Add the nullable full_name_bi column and the (tenant, full_name_bi) index."""
    op.add_column(_TABLE, sa.Column(_COLUMN, sa.String(64), nullable=True))
    op.create_index(_INDEX, _TABLE, ["tenant", _COLUMN])


def downgrade() -> None:
    """Drop the index and the column (batch mode: SQLite rebuilds the table if it must)."""
    op.drop_index(_INDEX, table_name=_TABLE)
    with op.batch_alter_table(_TABLE) as batch:
        batch.drop_column(_COLUMN)
