"""Study locks: what workers hold while they check a study's budget and create its next
trial, or create (or load) a study and check its search space.

SQLite: a file lock beside the database; PostgreSQL: ``pg_advisory_lock``; MySQL/MariaDB:
``GET_LOCK``; in-memory storages: a thread lock. (``grpc://`` storages lock through the proxy:
:func:`losstune.storage.study_lock`.) Threads of one process queue on a thread lock first, so
a process waits on a database lock with one connection at most.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator

from losstune.storage.base import (
    MEMORY_URLS,
    StorageError,
    StorageSettings,
    backend_of,
    mask_url,
    normalise_url,
    sqlite_path,
)
from losstune.storage.rdb import shared_storage

_locks_lock = threading.Lock()


def _lock_key(study_name: str, purpose: str = "budget") -> int:
    text = f"losstune:{study_name}" if purpose == "budget" else f"losstune:{purpose}:{study_name}"
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_thread_locks: dict[tuple[str, str, str], threading.Lock] = {}

#: What a study lock guards: ``budget`` (check the budget and create the next trial) and
#: ``create`` (create-or-load a study and check its search space).
LOCK_PURPOSES = ("budget", "create")


@contextlib.contextmanager
def local_lock(url: str, study_name: str, purpose: str) -> Iterator[str]:
    """This process's thread lock of a study lock; yields the normalised URL."""
    if purpose not in LOCK_PURPOSES:
        raise ValueError(f"unknown lock purpose {purpose!r}; expected one of {LOCK_PURPOSES}")
    url = normalise_url(url) if url not in MEMORY_URLS else "memory"
    with _locks_lock:
        local = _thread_locks.setdefault((url, study_name, purpose), threading.Lock())
    with local:
        yield url


@contextlib.contextmanager
def study_lock(url: str, study_name: str, purpose: str = "budget", *,
               engine: object = None) -> Iterator[None]:
    """Hold a lock shared by every process working on ``study_name`` in ``url``.

    SQLite: a file lock beside the database; PostgreSQL: ``pg_advisory_lock``; MySQL/MariaDB:
    ``GET_LOCK``; ``grpc://``: the proxy's lock service (which takes the database lock);
    in-memory: a thread lock. Threads of one process queue on a thread lock first, so a
    process waits on the database lock with one connection at most. The database lock holds a
    connection of the process's storage pool, or of ``engine`` when given (the proxy, which
    holds locks for many clients, uses its own).
    """
    with local_lock(url, study_name, purpose) as url:
        with backend_lock(url, study_name, purpose, engine=engine):
            yield


@contextlib.contextmanager
def backend_lock(url: str, study_name: str, purpose: str, *,
                 engine: object = None) -> Iterator[None]:
    """The lock of the storage itself (no thread lock); ``url`` normalised, not ``grpc://``."""
    backend = backend_of(url)
    if backend == "memory" or (backend == "sqlite" and sqlite_path(url) is None):
        yield
        return
    if backend == "sqlite":
        from filelock import FileLock

        path = sqlite_path(url)
        assert path is not None
        name = hashlib.sha256(study_name.encode()).hexdigest()[:12]
        suffix = "" if purpose == "budget" else f".{purpose}"
        with FileLock(str(path) + f".{name}{suffix}.lock"):
            yield
        return
    if backend == "grpc":
        raise ValueError("grpc:// storages lock through their proxy (losstune.storage.study_lock)")
    with _database_lock(url, backend, study_name, purpose, engine or _lock_engine(url)):
        yield


@contextlib.contextmanager
def _database_lock(url: str, backend: str, study_name: str, purpose: str,
                   engine: object) -> Iterator[None]:
    import sqlalchemy

    key = _lock_key(study_name, purpose)
    if backend == "postgresql":  # a session lock needs no transaction: no BEGIN/COMMIT trips
        engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    with engine.connect() as con:
        if backend == "postgresql":
            con.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                con.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        elif backend == "mysql":
            name = f"losstune_{abs(key) % 10**12}"
            got = con.execute(sqlalchemy.text("SELECT GET_LOCK(:n, 600)"),
                              {"n": name}).scalar()
            if got != 1:  # 0: timed out; NULL: error. Going on unlocked would break the budget
                raise StorageError(f"could not take the {purpose} lock of study {study_name!r} "
                                   f"on {mask_url(url)} within 600 s (GET_LOCK returned {got})")
            try:
                yield
            finally:
                con.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:n)"), {"n": name})
        else:  # pragma: no cover - normalise_url rejects other schemes
            yield


def _lock_engine(url: str):  # noqa: ANN202
    """The engine whose pool study locks borrow from: the process's storage engine for
    ``url`` (so locks count against the same ``pool_size``)."""
    return shared_storage(url, StorageSettings()).engine
