"""Alembic's environment, run by `scanner.store.database.migrate` on an open connection.

Online, the connection (already inside the caller's transaction, which holds the database's
write lock) comes in `config.attributes["connection"]`. Offline (`alembic upgrade --sql` with
`-x url=...` or `sqlalchemy.url` set), the SQL is printed instead.
"""

from __future__ import annotations

from alembic import context

from scanner.store.schema import VERSION_TABLE

config = context.config
connection = config.attributes.get("connection")

if connection is None:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    context.configure(url=url, literal_binds=True, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()
else:
    context.configure(connection=connection, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()
