"""Alembic environment: online on the connection `meow_platform.db.migrate` hands over, or offline
(`alembic upgrade --sql`) rendering the SQL for the URL's dialect, e.g. for a DBA to apply by hand."""

from alembic import context

from meow_platform.db import Base

if context.is_offline_mode():
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"), target_metadata=Base.metadata, literal_binds=True
    )
else:
    context.configure(
        connection=context.config.attributes["connection"], target_metadata=Base.metadata, render_as_batch=True
    )
with context.begin_transaction():
    context.run_migrations()
