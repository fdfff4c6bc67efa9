"""Storages from URLs on SQLite, PostgreSQL and MariaDB: settings, budget lock, masking, and a
real study on each server (unique names, deleted afterwards)."""

from __future__ import annotations

import contextlib
import threading
import time

import optuna
import pytest
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

import losstune.storage as storage_pkg
from losstune.studies import api
from tests.conftest import tiny_study
from tests.storage_tests.servers import (
    require_mysql,
    require_postgres,
    study_cleanup,
    unique_name,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _url(kind: str, sqlite_url: str) -> str:
    if kind == "sqlite":
        return sqlite_url
    return require_postgres() if kind == "postgres" else require_mysql()


BACKENDS = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mysql", marks=pytest.mark.mysql),
]


@pytest.mark.parametrize("kind", BACKENDS)
def test_rdb_storage_has_liveness_check_heartbeat_grace_and_retry_callback(
        kind: str, sqlite_url: str) -> None:
    url = _url(kind, sqlite_url)
    settings = storage_pkg.StorageSettings(heartbeat_interval=7, grace_period=30, max_retry=2)
    st = storage_pkg.get_storage(url, settings)
    assert isinstance(st, RDBStorage)
    # SQLite: pre-ping; servers: a ping after an idle second (see the next test)
    assert st.engine.pool._pre_ping is (kind == "sqlite")
    assert st.heartbeat_interval == 7 and st.grace_period == 30
    callback = st.get_heartbeat_stale_trial_callback()
    assert isinstance(callback, RetryHeartbeatStaleTrialCallback)
    assert callback._max_retry == 2
    name = unique_name()
    with study_cleanup(name, url):
        study = optuna.create_study(study_name=name, storage=st)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert name not in {s.study_name for s in optuna.get_all_study_summaries(st)}


@pytest.mark.parametrize("kind", BACKENDS[1:])
def test_a_connection_the_server_dropped_is_replaced(kind: str, sqlite_url: str) -> None:
    from losstune.storage.rdb import PING_AFTER_IDLE

    url = _url(kind, sqlite_url)
    storage_pkg.close_storage(url)
    st = storage_pkg.get_storage(url)
    st.get_all_studies()  # a pooled connection now exists
    with st.engine.connect() as con:  # the server drops every pooled connection of ours
        if kind == "postgres":
            mine = con.execute(sqlalchemy.text("SELECT pg_backend_pid()")).scalar()
            con.execute(sqlalchemy.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                "application_name = :app AND pid <> :mine"),
                {"app": f"losstune:{__import__('os').getpid()}", "mine": mine})
        else:
            mine = con.execute(sqlalchemy.text("SELECT CONNECTION_ID()")).scalar()
            others = con.execute(sqlalchemy.text(
                "SELECT id FROM information_schema.processlist WHERE user = CURRENT_USER() "
                "AND db = DATABASE() AND id <> :mine"), {"mine": mine}).scalars().all()
            for pid in others:
                with contextlib.suppress(Exception):
                    con.execute(sqlalchemy.text(f"KILL {int(pid)}"))
        con.invalidate()  # and this one
    time.sleep(PING_AFTER_IDLE + 0.3)
    name = unique_name()
    with study_cleanup(name, url):  # works on fresh connections, without an error
        optuna.create_study(study_name=name, storage=st).optimize(
            lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    storage_pkg.close_storage(url)


def test_sqlite_uses_wal_and_a_busy_timeout(sqlite_url: str) -> None:
    st = storage_pkg.get_storage(sqlite_url, storage_pkg.StorageSettings(heartbeat_interval=1,
                                                                         grace_period=2))
    with st.engine.connect() as con:
        mode = con.execute(sqlalchemy.text("PRAGMA journal_mode")).scalar()
        busy_ms = con.execute(sqlalchemy.text("PRAGMA busy_timeout")).scalar()
    assert str(mode).lower() == "wal"
    assert busy_ms == 60_000


def test_parallel_hint_names_postgresql_for_sqlite_only(sqlite_url: str) -> None:
    assert storage_pkg.parallel_hint(sqlite_url, 1) is None
    hint = storage_pkg.parallel_hint(sqlite_url, 4)
    assert hint and "4 worker processes" in hint and "PostgreSQL" in hint
    assert storage_pkg.parallel_hint("postgresql://u@h/db", 4) is None


@pytest.mark.parametrize("kind", BACKENDS)
def test_budget_lock_is_exclusive_across_connections(kind: str, sqlite_url: str) -> None:
    url = _url(kind, sqlite_url)
    storage_pkg.get_storage(url)  # creates the SQLite file
    name = unique_name("lock")
    inside: list[tuple[str, float, float]] = []

    def hold(tag: str) -> None:
        with storage_pkg.budget_lock(url, name):
            start = time.monotonic()
            time.sleep(0.4)
            inside.append((tag, start, time.monotonic()))

    threads = [threading.Thread(target=hold, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    (_, s1, e1), (_, s2, e2) = sorted(inside, key=lambda x: x[1])
    assert s2 >= e1 - 0.01, "two holders were inside the budget lock at once"


@pytest.mark.parametrize("url", [
    "postgresql://alice:s3cr3t-pw@db.example:5432/studies",
    "mysql+pymysql://alice:s3cr3t-pw@db.example/studies",
])
def test_mask_url_hides_the_password(url: str) -> None:
    masked = storage_pkg.mask_url(url)
    assert "s3cr3t-pw" not in masked and "alice" in masked and "***" in masked


@pytest.mark.postgres
def test_connection_errors_never_show_the_password() -> None:
    require_postgres()  # psycopg installed; the server itself is not used (port 1 is closed)
    with pytest.raises(storage_pkg.StorageError) as info:
        storage_pkg.get_storage("postgresql://postgres:s3cr3t-pw@127.0.0.1:1/test")
    assert "s3cr3t-pw" not in str(info.value) and "***" in str(info.value)


def _run_tiny(url: str, name: str, n_trials: int) -> api.RunSummary:
    spec, text = api.study_from_dict(tiny_study(name=name, n_trials=n_trials))
    return api.run_study(spec, study_text=text, storage=url, progress=False)


@pytest.mark.postgres
def test_study_on_postgresql_with_password_in_url_never_stores_it() -> None:
    base = require_postgres()
    # trust auth ignores the password, so a URL can carry one without breaking the login
    url = base.replace("postgres@", "postgres:s3cr3t-pw@", 1)
    name = unique_name("pg")
    with study_cleanup(name, url):
        summary = _run_tiny(url, name, 2)
        assert summary.finished == 2 and "s3cr3t-pw" not in summary.storage
        study = optuna.load_study(study_name=name, storage=storage_pkg.get_storage(url))
        stored = repr(study.user_attrs) + repr([t.user_attrs for t in study.trials])
        assert "s3cr3t-pw" not in stored
        assert study.trials[0].user_attrs["metric.val.macro_f1"] == study.trials[0].value


@pytest.mark.mysql
def test_mariadb_smoke_study_runs_and_is_cleaned_up() -> None:
    url = require_mysql()
    name = unique_name("my")
    with study_cleanup(name, url):
        summary = _run_tiny(url, name, 2)
        assert summary.finished == 2 and summary.failed == 0
        rows = {r.name: r for r in api.list_studies(url)}
        assert rows[name].complete == 2
    assert name not in {r.name for r in api.list_studies(url)}


def test_a_url_without_scheme_is_refused_without_showing_its_password() -> None:
    with pytest.raises(storage_pkg.StorageError, match="is not a URL") as info:
        storage_pkg.normalise_url("postgres:s3cr3t-pw@db.example/studies")
    assert "s3cr3t-pw" not in str(info.value) and "postgres:***@" in str(info.value)
