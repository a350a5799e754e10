"""idempotency_keys: one row per (namespace, Idempotency-Key), so two processes sharing the
database cannot both queue a request under one key (its primary key refuses the second); an
index on generations.completed_at, for the event relay of nodes without workers

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("namespace", sa.String(128), primary_key=True),
        sa.Column("idempotency_key", sa.String(255), primary_key=True),
        sa.Column("created_at", sa.Integer, nullable=False),
    )
    op.execute(  # the keys earlier requests used (a key may have been raced onto two row sets)
        "INSERT INTO idempotency_keys (namespace, idempotency_key, created_at) "
        "SELECT namespace, idempotency_key, MIN(enqueued_at) FROM generations "
        "WHERE idempotency_key IS NOT NULL GROUP BY namespace, idempotency_key")
    op.create_index("ix_generations_completed", "generations", ["completed_at"])


def downgrade() -> None:
    op.drop_index("ix_generations_completed", "generations")
    op.drop_table("idempotency_keys")
