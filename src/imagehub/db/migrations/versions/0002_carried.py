"""generations.carried: the generic fields a request carried, echoed on its rows

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("generations") as batch:  # SQLite: ALTER TABLE ADD COLUMN
        batch.add_column(sa.Column("carried", sa.JSON, nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("generations") as batch:
        batch.drop_column("carried")
