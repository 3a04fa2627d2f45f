"""Alembic migrations of the alerting database (run them with :func:`..db.migrate`)."""
