"""an index on generations (namespace, status): the enqueue counts a namespace's queued and
processing rows (``IMAGEHUB_MAX_QUEUED_PER_NAMESPACE``) from the index alone

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_generations_namespace_status", "generations", ["namespace", "status"])


def downgrade() -> None:
    op.drop_index("ix_generations_namespace_status", "generations")
