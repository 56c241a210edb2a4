"""Scan history: recording scans in a database (SQLite or PostgreSQL), reading them back,
and diffs between scans. Knows the result models, never sockets.

    database.py   open_store(url) -> Store; URL parsing, engines, SQLite set-up, migrations
    store.py      Store: the writes (begin, record a batch, finish, import), one transaction each
    queries.py    StoreReader, Store's base: list, reassemble, resolve refs, baselines, timelines
    records.py    row values: ScanRow, TimelineRow, ScanProgress, sort keys, model -> row
    writer.py     StoreWriter: a running scan's batching writer (one transaction per batch)
    diff.py       diff_documents(old, new) -> ScanDiff; render_diff_text (pure, no database)
    schema.py     the tables; migrations/ holds the Alembic revisions that build them
    common.py     what the full and the light writer share: constants, value conversions
    lite.py       the writer process's light way: SQLite at head with sqlite3 alone

This file imports nothing, so `scanner.store.diff` loads without SQLAlchemy.
"""
