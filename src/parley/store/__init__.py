"""Persistence: SQL tables, the async engine, and Alembic migrations."""
