"""generations and api_keys

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "generations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("namespace", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(36), nullable=True),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("media_type", sa.String(16), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("prompt", sa.Text, nullable=True),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("resolved", sa.JSON, nullable=False),
        sa.Column("provenance", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("num_images", sa.Integer, nullable=False),
        sa.Column("images", sa.JSON, nullable=False),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("progress", sa.Float, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("enqueued_at", sa.Integer, nullable=False),
        sa.Column("order_key", sa.BigInteger, nullable=False),
        sa.Column("started_at", sa.Integer, nullable=True),
        sa.Column("completed_at", sa.Integer, nullable=True),
    )
    op.create_index("ix_generations_status_order", "generations", ["status", "order_key"])
    op.create_index("ix_generations_namespace_enqueued", "generations", ["namespace", "enqueued_at"])
    op.create_index("ix_generations_idempotency", "generations", ["namespace", "idempotency_key"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("namespace", sa.String(128), nullable=False),
        sa.Column("member_of", sa.JSON, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Integer, nullable=False),
        sa.Column("revoked_at", sa.Integer, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_table("generations")
