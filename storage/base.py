"""What every storage module shares: storage URLs (resolution, checks, masking), the error and
the settings of losstune storages. A leaf: it imports no other module of the package.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import sqlite3
import time
import warnings
from collections.abc import Iterator
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
    # Switching to WAL takes an exclusive lock, and SQLite answers "database is locked" at once
    # (without its busy handler) when another process holds the file at that moment: retry.
    # Losstune's own processes also switch under the schema lock (storage.rdb.shared_storage).
    deadline = time.monotonic() + 60
    delay = 0.01
    while True:
        try:
            with contextlib.closing(sqlite3.connect(path, timeout=60)) as con:
                mode = con.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() != "wal":
                    con.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def parallel_hint(url: str, workers: int) -> str | None:
    """A one-line hint when several worker processes will share ``url`` (None when fine)."""
    if workers <= 1 or backend_of(url) != "sqlite":
        return None
    return (
        f"note: {workers} worker processes share the SQLite file {mask_url(url)} (WAL mode, "
        "busy timeout); it works on one machine, but for many workers or several machines use "
        "PostgreSQL: --storage postgresql://USER@HOST/DB"
    )


def _require_grpc() -> None:
    import importlib.util

    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # gRPC core's info lines are noise here
    if importlib.util.find_spec("grpc") is None:
        raise StorageError(
            "grpc:// storages and `losstune storage-proxy` need grpcio; install the 'grpc' "
            "extra: pip install -e '.[grpc]'"
        )


def parse_grpc_url(url: str) -> tuple[str, int]:
    """``grpc://HOST:PORT`` -> ``(HOST, PORT)`` (checks that grpcio is installed)."""
    rest = url.split("://", 1)[1].rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in rest:
        raise StorageError(
            f"storage {url!r} is not a proxy URL; use grpc://HOST:PORT (the address of "
            "`losstune storage-proxy`)"
        )
    _require_grpc()
    return host.strip("[]"), int(port)
