"""One control plane per store: a lock held for the life of the process that serves it.

Two control planes on one store would both reconcile and both launch: the second would fail the
first one's running jobs and double-launch queued ones. So `serve` takes the store's lock before
anything else and refuses to start without it:

- SQLite: an exclusive `flock` on `<database file>.lock` (holder PID written into it). The kernel
  drops it when the process dies, however it dies.
- PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) on a connection of its own,
  held open; the server drops it when that session ends (process death closes the socket).

The lock covers processes on one store, not the rate limiter or quotas inside one: more than one
replica per store is refused, not load-balanced.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

# pg_advisory_lock's key: "meow" in ASCII. Any value works as long as every control plane uses it.
ADVISORY_KEY = 0x6D656F77


class StoreBusy(Exception):
    """Another control plane serves this store. The message is one line, for the operator."""


class StoreLock:
    def __init__(self, database_url: str):
        self.url = make_url(database_url)
        self._fd: int | None = None
        self._connection = None

    def acquire(self) -> StoreLock:
        if self.url.get_backend_name() == "sqlite":
            self._lock_file()
        elif self.url.get_backend_name() == "postgresql":
            self._lock_postgres()
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _lock_file(self) -> None:
        database = self.url.database
        if not database or database == ":memory:":
            return
        path = Path(database + ".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreBusy(
                f"another control plane (pid {holder}) is serving the store {database}; stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def _lock_postgres(self) -> None:
        engine = create_engine(self.url, poolclass=NullPool)
        connection = engine.connect()
        held = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}).scalar()
        connection.commit()  # a session-level lock outlives the transaction that took it
        if not held:
            connection.close()
            raise StoreBusy(
                f"another control plane holds the lock of the store {self.url.render_as_string(hide_password=True)} "
                f"(PostgreSQL advisory lock {ADVISORY_KEY}); stop it first"
            )
        self._connection = connection
