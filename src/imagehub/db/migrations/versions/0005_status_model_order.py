"""an index on generations (status, model_name, order_key): a claim of one lane's models (the
remote models' workers) and a batch's claim of one model's rows read their queued rows alone,
not the whole queue

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_generations_status_model_order", "generations",
                    ["status", "model_name", "order_key"])


def downgrade() -> None:
    op.drop_index("ix_generations_status_model_order", "generations")
