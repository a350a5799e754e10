"""The relational store (SQLite by default, any SQLAlchemy URL later): tables and migrations."""
