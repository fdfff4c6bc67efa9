"""Optuna storages from URLs: SQLite (embedded default), PostgreSQL, MySQL/MariaDB, in-memory.

* :func:`resolve_storage_url` picks the URL: ``--storage`` flag, then ``$LOSSTUNE_STORAGE``, then
  the study file's ``storage:``, then ``sqlite:///losstune.db`` in the working directory.
* :func:`get_storage` builds an ``RDBStorage`` with pool pre-ping, a heartbeat, a grace period and
  Optuna's retry callback for stale trials (Optuna 5 names), WAL and a busy timeout for SQLite.
* :func:`mask_url` hides passwords; URLs are only ever printed or stored masked.
* :func:`budget_lock` serialises the "may I start another trial?" check across workers.
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from losstune.objectives.errors import LosstuneError

logger = logging.getLogger(__name__)

STORAGE_ENV = "LOSSTUNE_STORAGE"
DEFAULT_STORAGE = "sqlite:///losstune.db"
MEMORY_URLS = frozenset({"memory", "inmemory", ":memory:"})


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


def normalise_url(url: str) -> str:
    """Check the scheme and driver; map ``mysql://`` to PyMySQL when mysqlclient is absent."""
    url = url.strip()
    if url in MEMORY_URLS:
        return "memory"
    if "://" not in url:
        shown = re.sub(r"([^:/@\s]+):[^@\s]+@", r"\1:***@", url)  # user:password@host
        raise StorageError(
            f"storage {shown!r} is not a URL; use sqlite:///FILE.db, postgresql://USER@HOST/DB, "
            "mysql+pymysql://USER@HOST/DB or 'memory'"
        )
    scheme = url.split("://", 1)[0].lower()
    backend = scheme.split("+", 1)[0]
    driver = scheme.split("+", 1)[1] if "+" in scheme else None
    if backend == "sqlite":
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
        f"unsupported storage scheme {scheme!r}; use sqlite, postgresql, mysql or 'memory'"
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


def get_storage(url: str, settings: StorageSettings | None = None):  # noqa: ANN201
    """An Optuna storage for ``url`` (``"memory"`` gives one process-wide in-memory storage).

    RDB storages get ``pool_pre_ping``, the heartbeat, the grace period and
    ``RetryHeartbeatStaleTrialCallback(max_retry)`` (Optuna 5's
    ``heartbeat_stale_trial_callback``).
    """
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    settings = settings or StorageSettings()
    url = normalise_url(url)
    if url == "memory":
        with _memory_lock:
            if url not in _memory_storages:
                _memory_storages[url] = optuna.storages.InMemoryStorage()
            return _memory_storages[url]
    engine_kwargs: dict[str, object] = {"pool_pre_ping": True}
    if backend_of(url) == "sqlite":
        _prepare_sqlite(url)
        engine_kwargs["connect_args"] = {"timeout": settings.sqlite_timeout}
    with quiet_experimental():
        try:
            return RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=settings.heartbeat_interval,
                grace_period=settings.grace_period,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                    max_retry=settings.max_retry
                ),
            )
        except Exception as exc:  # noqa: BLE001 - connection errors carry the password
            text = str(exc)
            for form in password_forms(url):  # whole words only: never "***ymysql"
                text = re.sub(rf"(?<!\w){re.escape(form)}(?!\w)", "***", text)
            raise StorageError(
                f"cannot open storage {mask_url(url)}: {type(exc).__name__}: "
                f"{text.splitlines()[0] if text else ''}"
            ) from None


def _lock_key(study_name: str) -> int:
    digest = hashlib.sha256(f"losstune:{study_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_thread_locks: dict[str, threading.Lock] = {}


@contextlib.contextmanager
def budget_lock(url: str, study_name: str) -> Iterator[None]:
    """Hold a lock shared by every worker of ``study_name`` on ``url``.

    SQLite: a file lock beside the database; PostgreSQL: ``pg_advisory_lock``; MySQL/MariaDB:
    ``GET_LOCK``; in-memory: a thread lock. Workers take it to check the budget and create their
    next trial atomically, so N workers finish exactly ``n_trials``.
    """
    backend = backend_of(url)
    if backend == "memory" or (backend == "sqlite" and sqlite_path(url) is None):
        lock = _thread_locks.setdefault(f"{url}:{study_name}", threading.Lock())
        with lock:
            yield
        return
    if backend == "sqlite":
        from filelock import FileLock

        path = sqlite_path(url)
        assert path is not None
        name = hashlib.sha256(study_name.encode()).hexdigest()[:12]
        with FileLock(str(path) + f".{name}.lock"):
            yield
        return
    import sqlalchemy

    engine = _lock_engine(url)
    key = _lock_key(study_name)
    with engine.connect() as con:
        if backend == "postgresql":
            con.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
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
                raise StorageError(f"could not take the budget lock of study {study_name!r} on "
                                   f"{mask_url(url)} within 600 s (GET_LOCK returned {got})")
            try:
                yield
            finally:
                con.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:n)"), {"n": name})
        else:  # pragma: no cover - normalise_url rejects other schemes
            yield


_engines: dict[str, object] = {}


def _lock_engine(url: str):  # noqa: ANN202
    import sqlalchemy

    with _memory_lock:
        if url not in _engines:
            _engines[url] = sqlalchemy.create_engine(url, pool_pre_ping=True, pool_size=1)
        return _engines[url]


__all__ = [
    "DEFAULT_STORAGE",
    "STORAGE_ENV",
    "StorageError",
    "StorageSettings",
    "backend_of",
    "budget_lock",
    "get_storage",
    "mask_url",
    "normalise_url",
    "quiet_experimental",
    "parallel_hint",
    "password_forms",
    "resolve_storage_url",
    "sqlite_path",
    "url_password",
]
