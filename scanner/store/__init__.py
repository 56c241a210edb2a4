"""Scan history: recording scans in a database (SQLite or PostgreSQL), reading them back,
and diffs between scans. Knows the result models, never sockets.

    database.py   open_store(url) -> Store: record, list, reassemble, resolve refs, timelines
    writer.py     StoreWriter: a running scan's batching writer (one transaction per batch)
    diff.py       diff_documents(old, new) -> ScanDiff; render_diff_text (pure, no database)
    schema.py     the tables; migrations/ holds the Alembic revisions that build them

This file imports nothing, so `scanner.store.diff` loads without SQLAlchemy.
"""
