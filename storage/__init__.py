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
import hashlib
import importlib.util
import logging
import os
import re
import sqlite3
import threading
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from losstune.objectives.errors import LosstuneError

logger = logging.getLogger(__name__)

STORAGE_ENV = "LOSSTUNE_STORAGE"
DEFAULT_STORAGE = "sqlite:///losstune.db"
MEMORY_URLS = frozenset({"memory", "inmemory", ":memory:"})
#: Connections per process and database URL (PostgreSQL, MySQL): the trial's thread and the
#: heartbeat thread or the study lock at once. See docs/distributed.md for the arithmetic.
POOL_SIZE = 2


class StorageError(LosstuneError, ValueError):
    """A storage URL cannot be used; the message says why and how to fix it."""


@dataclass(frozen=True)
class StorageSettings:
    """Heartbeat and retry settings of RDB storages.

    ``grace_period`` must exceed ``heartbeat_interval``: a trial whose heartbeat is older than the
    grace period is failed (and retried up to ``max_retry`` times) by the next worker that starts
    a trial, or by ``losstune run`` when it resumes the study.
    """

    heartbeat_interval: int = 20
    grace_period: int = 60
    max_retry: int = 3
    sqlite_timeout: float = 60.0
    #: seconds between writes of a running trial's buffered per-epoch reports (0: every report)
    report_interval: float = 1.0
    #: connections per process to a PostgreSQL / MySQL database (no overflow)
    pool_size: int = POOL_SIZE
    #: seconds a thread waits for a free pooled connection before failing
    pool_timeout: float = 120.0
    #: True: PostgreSQL ``synchronous_commit=on`` and SQLite ``synchronous=FULL`` (slower)
    durable_commits: bool = False

    def __post_init__(self) -> None:
        if self.heartbeat_interval < 1:
            raise StorageError(
                f"`heartbeat_interval >= 1` must hold, but got {self.heartbeat_interval}"
            )
        if self.grace_period <= self.heartbeat_interval:
            raise StorageError(
                "`grace_period > heartbeat_interval` must hold, but got "
                f"grace_period={self.grace_period}, heartbeat_interval={self.heartbeat_interval}"
            )
        if self.pool_size < 2:
            raise StorageError(f"`pool_size >= 2` must hold, but got {self.pool_size}")
        if self.report_interval < 0:
            raise StorageError(
                f"`report_interval >= 0` must hold, but got {self.report_interval}"
            )


@contextlib.contextmanager
def quiet_experimental() -> Iterator[None]:
    """Silence Optuna's ExperimentalWarning for features losstune relies on on purpose
    (heartbeats, the retry callback, metric names, stale-trial failing)."""
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        yield


_QUERY_PASSWORD = re.compile(r"(?i)([?&](?:password|passwd|pwd)=)[^&]*")


def _password_span(url: str) -> tuple[int, int] | None:
    """Where the password of ``scheme://user:password@host/...`` is in ``url``.

    The password ends at the *last* ``@``: a host never holds one, while a password typed
    without percent-encoding may hold ``@``, ``:``, ``/``, ``#``, ``?`` or spaces. (A query
    holding ``@`` makes this mask more than the password, never less.)
    """
    if "://" not in url or backend_of(url) == "sqlite":
        return None
    start = url.index("://") + 3
    at = url.rfind("@", start)
    if at < 0:
        return None
    colon = url.find(":", start, at)
    if colon < 0 or "/" in url[start:colon]:
        return None
    return colon + 1, at


def mask_url(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db`` (a
    ``?password=`` query argument is masked too), whatever characters the password holds."""
    if url in MEMORY_URLS or "://" not in url:
        return url
    span = _password_span(url)
    if span is not None:
        url = url[:span[0]] + "***" + url[span[1]:]
    return _QUERY_PASSWORD.sub(r"\1***", url)


def url_password(url: str) -> str | None:
    """The password in a URL as the database driver receives it (percent-decoded), if any
    (so that callers can scrub it from text)."""
    span = _password_span(url)
    if span is None:
        return None
    from urllib.parse import unquote

    return unquote(url[span[0]:span[1]]) or None


def password_forms(url: str) -> list[str]:
    """Every way the password of ``url`` may appear in text: as written in the URL and
    percent-decoded (longest first)."""
    span = _password_span(url)
    if span is None:
        return []
    from urllib.parse import unquote

    raw = url[span[0]:span[1]]
    return sorted({f for f in (raw, unquote(raw)) if f}, key=len, reverse=True)


def resolve_storage_url(flag: str | None = None, study_file: str | None = None) -> str:
    """The storage URL to use: flag, then ``$LOSSTUNE_STORAGE``, then study file, then default."""
    for candidate in (flag, os.environ.get(STORAGE_ENV), study_file):
        if candidate:
            return normalise_url(candidate)
    return DEFAULT_STORAGE


def follow_up_hint(url: str) -> tuple[str, str | None]:
    """How later commands reach the storage ``url`` a run used: ``(flag, note)``.

    ``flag`` is `` --storage URL`` (shell-quoted) to append to each suggested command, empty
    when those commands would find ``url`` by themselves (``$LOSSTUNE_STORAGE`` or the default
    file). A URL with a password is never printed runnable: ``flag`` is empty and ``note`` asks
    to set ``$LOSSTUNE_STORAGE`` to it (shown masked) instead.
    """
    import shlex

    if url == resolve_storage_url(None):
        return "", None
    if url_password(url):
        return "", (f"set {STORAGE_ENV} to the storage URL with its password "
                    f"({mask_url(url)}) for these commands")
    return f" --storage {shlex.quote(url)}", None


def normalise_url(url: str) -> str:
    """Check the scheme and driver; map ``mysql://`` to PyMySQL when mysqlclient is absent."""
    url = url.strip()
    if url in MEMORY_URLS:
        return "memory"
    if "://" not in url:
        shown = re.sub(r"([^:/@\s]+):[^@\s]+@", r"\1:***@", url)  # user:password@host
        raise StorageError(
            f"storage {shown!r} is not a URL; use sqlite:///FILE.db, postgresql://USER@HOST/DB, "
            "mysql+pymysql://USER@HOST/DB, grpc://HOST:PORT or 'memory'"
        )
    scheme = url.split("://", 1)[0].lower()
    backend = scheme.split("+", 1)[0]
    driver = scheme.split("+", 1)[1] if "+" in scheme else None
    if backend == "sqlite":
        return url
    if backend == "grpc":
        from losstune.storage.proxy import parse_grpc_url

        parse_grpc_url(url)  # checks host, port and grpcio
        return url
    span = _password_span(url)
    if span is not None and "@" in url[span[0]:span[1]]:
        # a password typed with a raw '@': encode it, or the driver would split it there
        url = url[:span[0]] + url[span[0]:span[1]].replace("@", "%40") + url[span[1]:]
    if backend in ("postgresql", "postgres"):
        if backend == "postgres":
            url = "postgresql" + url[len("postgres"):]
        need = {None: "psycopg", "psycopg": "psycopg", "psycopg2": "psycopg2"}.get(driver, driver)
        if need and importlib.util.find_spec(need) is None:
            raise StorageError(
                f"PostgreSQL URL {mask_url(url)!r} needs the {need!r} driver; install the "
                "'postgres' extra: pip install -e '.[postgres]'"
            )
        return url
    if backend in ("mysql", "mariadb"):
        if driver is None:
            if importlib.util.find_spec("MySQLdb") is None:
                if importlib.util.find_spec("pymysql") is None:
                    raise StorageError(
                        f"MySQL URL {mask_url(url)!r} needs a driver; install the 'mysql' extra "
                        "(PyMySQL): pip install -e '.[mysql]'"
                    )
                url = "mysql+pymysql://" + url.split("://", 1)[1]
        elif importlib.util.find_spec(driver) is None:
            raise StorageError(
                f"MySQL URL {mask_url(url)!r} needs the {driver!r} driver; install the 'mysql' "
                "extra: pip install -e '.[mysql]'"
            )
        if backend == "mariadb":
            url = "mysql" + url[len("mariadb"):]
        return url
    raise StorageError(
        f"unsupported storage scheme {scheme!r}; use sqlite, postgresql, mysql, grpc or 'memory'"
    )


def backend_of(url: str) -> str:
    if url == "memory":
        return "memory"
    return url.split("://", 1)[0].split("+", 1)[0].lower()


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (None for in-memory SQLite)."""
    if backend_of(url) != "sqlite":
        return None
    rest = url.split("://", 1)[1]
    path = rest[1:] if rest.startswith("/") else rest
    path = path.split("?", 1)[0]
    if path in ("", ":memory:"):
        return None
    return Path(path)


def _prepare_sqlite(url: str) -> None:
    path = sqlite_path(url)
    if path is None:
        return
    if path.parent and not path.parent.exists():
        raise StorageError(f"folder {str(path.parent)!r} of SQLite storage does not exist")
    with contextlib.closing(sqlite3.connect(path, timeout=60)) as con:
        mode = con.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            con.execute("PRAGMA journal_mode=WAL")


def parallel_hint(url: str, workers: int) -> str | None:
    """A one-line hint when several worker processes will share ``url`` (None when fine)."""
    if workers <= 1 or backend_of(url) != "sqlite":
        return None
    return (
        f"note: {workers} worker processes share the SQLite file {mask_url(url)} (WAL mode, "
        "busy timeout); it works on one machine, but for many workers or several machines use "
        "PostgreSQL: --storage postgresql://USER@HOST/DB"
    )


_memory_storages: dict[str, object] = {}
_memory_lock = threading.Lock()
#: One losstune RDB storage per (process, URL): its engine and pool are shared by every storage
#: object this process opens on the URL (objects differ only in heartbeat settings).
_bases: dict[tuple[int, str], object] = {}


def get_storage(url: str, settings: StorageSettings | None = None):  # noqa: ANN201
    """An Optuna storage for ``url`` (``"memory"`` gives one process-wide in-memory storage).

    RDB storages are :class:`losstune.storage.rdb.LosstuneRDBStorage` objects with
    ``pool_pre_ping``, the heartbeat, the grace period and
    ``RetryHeartbeatStaleTrialCallback(max_retry)`` (Optuna 5's
    ``heartbeat_stale_trial_callback``); ``grpc://HOST:PORT`` gives a
    :class:`losstune.storage.proxy.ProxyStorage` with the same settings.
    """
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    settings = settings or StorageSettings()
    url = normalise_url(url)
    if url == "memory":
        with _memory_lock:
            if url not in _memory_storages:
                _memory_storages[url] = optuna.storages.InMemoryStorage()
            return _memory_storages[url]
    with quiet_experimental():
        callback = RetryHeartbeatStaleTrialCallback(max_retry=settings.max_retry)
        if backend_of(url) == "grpc":
            from losstune.storage.proxy import ProxyStorage

            return ProxyStorage(url, settings=settings, heartbeat_stale_trial_callback=callback)
    base = _base_storage(url, settings)
    return base.view(heartbeat_interval=settings.heartbeat_interval,
                     grace_period=settings.grace_period,
                     heartbeat_stale_trial_callback=callback,
                     report_interval=settings.report_interval)


def _base_storage(url: str, settings: StorageSettings):  # noqa: ANN202
    """The process's shared storage object for ``url`` (created on first use)."""
    from losstune.storage.rdb import LosstuneRDBStorage

    key = (os.getpid(), url)
    with _memory_lock:
        base = _bases.get(key)
    if base is not None:
        return base
    engine_kwargs: dict[str, object] = {"pool_pre_ping": True}
    if backend_of(url) == "sqlite":
        _prepare_sqlite(url)
        engine_kwargs["connect_args"] = {"timeout": settings.sqlite_timeout}
    else:
        engine_kwargs.update(pool_size=settings.pool_size, max_overflow=0,
                             pool_timeout=settings.pool_timeout)
        if backend_of(url) == "postgresql" and "application_name" not in url:
            # pg_stat_activity shows which process holds which connection
            engine_kwargs["connect_args"] = {"application_name": f"losstune:{os.getpid()}"}
    with quiet_experimental():
        try:
            base = LosstuneRDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                report_interval=settings.report_interval,
                durable_commits=settings.durable_commits,
                heartbeat_interval=settings.heartbeat_interval,
                grace_period=settings.grace_period,
            )
        except Exception as exc:  # noqa: BLE001 - connection errors carry the password
            text = str(exc)
            for form in password_forms(url):  # whole words only: never "***ymysql"
                text = re.sub(rf"(?<!\w){re.escape(form)}(?!\w)", "***", text)
            raise StorageError(
                f"cannot open storage {mask_url(url)}: {type(exc).__name__}: "
                f"{text.splitlines()[0] if text else ''}"
            ) from None
    with _memory_lock:
        return _bases.setdefault(key, base)


def close_storage(url: str) -> None:
    """Close this process's connections to ``url`` (e.g. before dropping its database)."""
    url = normalise_url(url)
    with _memory_lock:
        base = _bases.pop((os.getpid(), url), None)
    engine = getattr(base, "engine", None)
    if engine is not None:
        engine.dispose()
    if backend_of(url) == "grpc":
        from losstune.storage.proxy import close_channel

        close_channel(url)


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


def _lock_key(study_name: str, purpose: str = "budget") -> int:
    text = f"losstune:{study_name}" if purpose == "budget" else f"losstune:{purpose}:{study_name}"
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_thread_locks: dict[tuple[str, str, str], threading.Lock] = {}

#: What a study lock guards: ``budget`` (check the budget and create the next trial) and
#: ``create`` (create-or-load a study and check its search space).
LOCK_PURPOSES = ("budget", "create")


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
    if purpose not in LOCK_PURPOSES:
        raise ValueError(f"unknown lock purpose {purpose!r}; expected one of {LOCK_PURPOSES}")
    url = normalise_url(url) if url not in MEMORY_URLS else "memory"
    with _memory_lock:
        local = _thread_locks.setdefault((url, study_name, purpose), threading.Lock())
    with local:
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
            from losstune.storage.proxy import remote_lock

            with remote_lock(url, study_name, purpose):
                yield
            return
        with _database_lock(url, backend, study_name, purpose, engine or _lock_engine(url)):
            yield


@contextlib.contextmanager
def _database_lock(url: str, backend: str, study_name: str, purpose: str,
                   engine: object) -> Iterator[None]:
    import sqlalchemy

    key = _lock_key(study_name, purpose)
    with engine.connect() as con:
        if backend == "postgresql":
            con.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            con.commit()
            try:
                yield
            finally:
                con.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                con.commit()
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


def budget_lock(url: str, study_name: str) -> contextlib.AbstractContextManager[None]:
    """The lock under which workers check the budget and create their next trial atomically,
    so N workers finish exactly ``n_trials`` (:func:`study_lock` with purpose ``budget``)."""
    return study_lock(url, study_name, "budget")


def _lock_engine(url: str):  # noqa: ANN202
    """The engine whose pool study locks borrow from: the process's storage engine for
    ``url`` (so locks count against the same ``pool_size``)."""
    return _base_storage(url, StorageSettings()).engine


__all__ = [
    "DEFAULT_STORAGE",
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
