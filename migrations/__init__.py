"""Alembic migrations that put the /v1/memory table under PostgreSQL's own enforcement."""
