"""Alembic migrations of the scan history, applied by `open_store` (no alembic.ini needed)."""
