"""The database servers of the development and CI machines, for tests that need them.

PostgreSQL: 127.0.0.1:5432, user postgres (trust auth), database ``test``. MariaDB: 127.0.0.1:3306,
user root, empty password, database ``test``. ``$LOSSTUNE_TEST_PG`` / ``$LOSSTUNE_TEST_MYSQL``
point elsewhere. Tests use :func:`unique_name` and delete their studies afterwards.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import optuna
import pytest

from tests.conftest import require

PG_URL = os.environ.get("LOSSTUNE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("LOSSTUNE_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/test")


@functools.cache
def _reachable(url: str) -> str | None:
    """None when ``url`` answers ``SELECT 1``; else why not."""
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as con:
            con.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not here"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def require_postgres() -> str:
    why = _reachable(PG_URL)
    require(why is None, f"PostgreSQL at {PG_URL} ({why})")
    return PG_URL


def require_mysql() -> str:
    why = _reachable(MYSQL_URL)
    require(why is None, f"MariaDB/MySQL at {MYSQL_URL} ({why})")
    return MYSQL_URL


def unique_name(prefix: str = "lt") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def delete_study(name: str, url: str) -> None:
    from losstune.storage import get_storage

    try:
        optuna.delete_study(study_name=name, storage=get_storage(url))
    except KeyError:
        pass


@contextmanager
def study_cleanup(name: str, url: str) -> Iterator[str]:
    """Delete study ``name`` from ``url`` on exit (also when the test fails)."""
    try:
        yield name
    finally:
        delete_study(name, url)


@pytest.fixture
def pg_url() -> str:
    return require_postgres()


@pytest.fixture
def mysql_url() -> str:
    return require_mysql()


@contextmanager
def fresh_database(kind: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL (``kind="postgres"``) or MariaDB (``"mysql"``)
    server, dropped on exit; yields its URL."""
    import sqlalchemy
    from sqlalchemy.engine import make_url

    from losstune.storage import close_storage

    base = require_postgres() if kind == "postgres" else require_mysql()
    name = unique_name("ltdb")
    admin = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT",
                                     poolclass=sqlalchemy.pool.NullPool)
    with admin.connect() as con:
        con.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        close_storage(url)
        with admin.connect() as con:
            force = " WITH (FORCE)" if kind == "postgres" else ""
            con.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {name}{force}"))
        admin.dispose()
