"""Optuna storages from URLs: SQLite (embedded default), PostgreSQL, MySQL/MariaDB, a losstune
gRPC storage proxy, in-memory.

* :func:`resolve_storage_url` picks the URL: ``--storage`` flag, then ``$LOSSTUNE_STORAGE``, then
  the study file's ``storage:``, then ``sqlite:///losstune.db`` in the working directory.
* :func:`get_storage` builds a :class:`losstune.storage.rdb.LosstuneRDBStorage` (Optuna's
  ``RDBStorage`` with buffered reports, batched attributes, cheap commits and an explicit
  connection pool shared per process) with pool pre-ping, a heartbeat, a grace period and
  Optuna's retry callback for stale trials; WAL and a busy timeout for SQLite. ``grpc://HOST:PORT``
  gives a client of ``losstune storage-proxy`` (:mod:`losstune.storage.proxy`).
* :func:`mask_url` hides passwords; URLs are only ever printed or stored masked.
* :func:`study_lock` / :func:`budget_lock` serialise "may I start another trial?" (and study
  creation) across workers: a file lock (SQLite), ``pg_advisory_lock`` (PostgreSQL),
  ``GET_LOCK`` (MySQL), or the proxy's lock service (``grpc://``).
* :func:`set_user_attrs` writes several attributes of a running trial in one transaction.

Connections (PostgreSQL, MySQL): a process holds at most ``StorageSettings.pool_size``
connections (default :data:`POOL_SIZE`) per database URL, shared by all its storage objects,
its heartbeat thread and its study locks; schema creation borrows one more for a moment. The
engine settings (``pool_size``, ``pool_timeout``, ``durable_commits``, ``sqlite_timeout``) are
those of the first storage a process opens on a URL (:func:`close_storage` to change them);
heartbeat settings and ``report_interval`` are per storage object.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping

from losstune.storage import locks
from losstune.storage.base import (
    DEFAULT_STORAGE,
    MEMORY_URLS,
    POOL_SIZE,
    STORAGE_ENV,
    StorageError,
    StorageSettings,
    backend_of,
    follow_up_hint,
    mask_url,
    normalise_url,
    parallel_hint,
    password_forms,
    quiet_experimental,
    resolve_storage_url,
    sqlite_path,
    url_password,
)
from losstune.storage.locks import LOCK_PURPOSES, local_lock

_memory_storages: dict[str, object] = {}
_memory_lock = threading.Lock()


def get_storage(url: str, settings: StorageSettings | None = None):  # noqa: ANN201
    """An Optuna storage for ``url`` (``"memory"`` gives one process-wide in-memory storage).

    RDB storages are :class:`losstune.storage.rdb.LosstuneRDBStorage` objects with
    ``pool_pre_ping``, the heartbeat, the grace period and
    ``RetryHeartbeatStaleTrialCallback(max_retry)`` (Optuna 5's
    ``heartbeat_stale_trial_callback``); ``grpc://HOST:PORT`` gives a
    :class:`losstune.storage.proxy.ProxyStorage` with the same settings.
    """
    import optuna

    settings = settings or StorageSettings()
    url = normalise_url(url)
    if url == "memory":
        with _memory_lock:
            if url not in _memory_storages:
                _memory_storages[url] = optuna.storages.InMemoryStorage()
            return _memory_storages[url]
    if backend_of(url) == "grpc":
        from losstune.storage.proxy import open_proxy

        return open_proxy(url, settings)
    from losstune.storage.rdb import open_rdb

    return open_rdb(url, settings)


def close_storage(url: str) -> None:
    """Close this process's connections to ``url`` (e.g. before dropping its database)."""
    url = normalise_url(url)
    if backend_of(url) == "grpc":
        from losstune.storage.proxy import close_channel

        close_channel(url)
        return
    from losstune.storage.rdb import close_shared

    close_shared(url)


def set_user_attrs(trial: object, attrs: Mapping[str, object]) -> None:
    """Set several user attributes of a running Optuna ``trial``: one transaction (or one
    proxy request) on losstune storages, one call per attribute on any other storage."""
    storage = getattr(trial, "storage", None)
    backend = getattr(storage, "_backend", storage)  # Optuna wraps RDB storages in a cache
    bulk = getattr(backend, "set_trial_user_attrs", None)
    trial_id = getattr(trial, "_trial_id", None)
    if bulk is None or trial_id is None or not attrs:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)  # type: ignore[attr-defined]
        return
    bulk(trial_id, dict(attrs))
    cached = getattr(trial, "_cached_frozen_trial", None)  # what trial.user_attrs reads
    if cached is not None:
        cached.user_attrs.update(attrs)


@contextlib.contextmanager
def study_lock(url: str, study_name: str, purpose: str = "budget", *,
               engine: object = None) -> Iterator[None]:
    """Hold a lock shared by every process working on ``study_name`` in ``url``.

    SQLite: a file lock beside the database; PostgreSQL: ``pg_advisory_lock``; MySQL/MariaDB:
    ``GET_LOCK``; ``grpc://``: the proxy's lock service (which takes the database lock);
    in-memory: a thread lock. Threads of one process queue on a thread lock first, so a
    process waits on the database lock with one connection at most. The database lock holds a
    connection of the process's storage pool, or of ``engine`` when given (the proxy, which
    holds locks for many clients, uses its own). ``purpose`` is one of :data:`LOCK_PURPOSES`.
    """
    if backend_of(url) != "grpc":
        with locks.study_lock(url, study_name, purpose, engine=engine):
            yield
        return
    from losstune.storage.proxy import remote_lock

    with local_lock(url, study_name, purpose) as url, remote_lock(url, study_name, purpose):
        yield


def budget_lock(url: str, study_name: str) -> contextlib.AbstractContextManager[None]:
    """The lock under which workers check the budget and create their next trial atomically,
    so N workers finish exactly ``n_trials`` (:func:`study_lock` with purpose ``budget``)."""
    return study_lock(url, study_name, "budget")


__all__ = [
    "DEFAULT_STORAGE",
    "LOCK_PURPOSES",
    "MEMORY_URLS",
    "STORAGE_ENV",
    "StorageError",
    "StorageSettings",
    "backend_of",
    "POOL_SIZE",
    "budget_lock",
    "close_storage",
    "follow_up_hint",
    "get_storage",
    "mask_url",
    "normalise_url",
    "quiet_experimental",
    "parallel_hint",
    "password_forms",
    "resolve_storage_url",
    "set_user_attrs",
    "sqlite_path",
    "study_lock",
    "url_password",
]
