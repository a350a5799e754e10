"""Alembic environment: runs on the connection imagehub hands over (see ``session.migrate``)."""

from __future__ import annotations

from alembic import context

from imagehub.db.records import Base

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` CLI use: build one from the settings
    from imagehub.config import load_settings
    from imagehub.db.session import make_engine

    connection = make_engine(load_settings().resolved_database_url).connect()

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
