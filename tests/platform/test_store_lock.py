"""One control plane per store: the store lock on SQLite (a file lock) and PostgreSQL (an advisory
lock held by a session), taken twice on one store. The refusal of a second `meow platform up` is in
test_platform_up.py."""

from __future__ import annotations

import pytest
from test_job_store import postgres  # noqa: F401 (the PostgreSQL server fixture)

from meow_platform.storelock import StoreBusy, StoreLock


def test_a_second_lock_on_one_sqlite_store_is_refused_until_the_first_is_released(tmp_path):
    url = f"sqlite:///{tmp_path / 'platform.db'}"
    first = StoreLock(url).acquire()
    with pytest.raises(StoreBusy, match=rf"another control plane \(pid \d+\) is serving the store {tmp_path}"):
        StoreLock(url).acquire()
    StoreLock(f"sqlite:///{tmp_path / 'other.db'}").acquire().release()  # other stores are free
    first.release()
    StoreLock(url).acquire().release()


def test_a_second_lock_on_one_postgresql_store_is_refused_until_the_first_is_released(postgres):  # noqa: F811
    postgres.psql("CREATE DATABASE locked;")
    url = postgres.get_uri("locked").replace("postgresql://", "postgresql+psycopg://")
    first = StoreLock(url).acquire()
    with pytest.raises(StoreBusy, match="another control plane holds the lock of the store .*advisory lock"):
        StoreLock(url).acquire()
    first.release()
    StoreLock(url).acquire().release()
