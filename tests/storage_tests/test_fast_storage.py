"""What makes a trial's storage work cheap, and what it keeps: attributes in one transaction,
reports buffered for at most ``report_interval`` seconds (written before the trial ends, and
never more lost by a killed worker), cheap commit settings, the paced pruner, the explicit
connection pool."""

from __future__ import annotations

import datetime
import subprocess
import sys
import time

import optuna
import pytest
import sqlalchemy
from optuna.storages import RDBStorage
from optuna.trial import TrialState

import losstune.storage as storage_pkg
from losstune.studies.runner import PacedPruner, paced
from tests.storage_tests.servers import require_postgres, study_cleanup, unique_name
from tests.studies_tests.ray_helpers import REPO, subprocess_env

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _reader(url: str) -> RDBStorage:
    """A plain Optuna storage with its own engine: sees only what was committed."""
    return RDBStorage(url)


def test_many_attributes_are_one_transaction(sqlite_url: str) -> None:
    storage = storage_pkg.get_storage(sqlite_url)
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    commits: list[int] = []
    sqlalchemy.event.listen(storage.engine, "commit", lambda con: commits.append(1))
    attrs = {f"metric.val.m{i}": i / 10 for i in range(25)} | {"curve.x": [0.1, 0.2]}
    storage_pkg.set_user_attrs(trial, attrs)
    assert len(commits) == 1
    assert trial.user_attrs == attrs  # the trial object sees them too
    stored = _reader(sqlite_url).get_trial(trial._trial_id).user_attrs
    assert stored == attrs


def test_reports_are_buffered_then_written_before_the_trial_ends(sqlite_url: str) -> None:
    settings = storage_pkg.StorageSettings(report_interval=0.5)
    storage_pkg.close_storage(sqlite_url)
    storage = storage_pkg.get_storage(sqlite_url, settings)
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    reader = _reader(sqlite_url)
    for step in range(3):
        trial.report(step / 10, step)
    assert reader.get_trial(trial._trial_id).intermediate_values == {}  # not yet written
    assert study.trials[0].intermediate_values == {0: 0.0, 1: 0.1, 2: 0.2}  # this process
    time.sleep(0.6)
    trial.report(0.3, 3)  # the interval has passed: everything so far in one transaction
    assert reader.get_trial(trial._trial_id).intermediate_values == {0: 0.0, 1: 0.1, 2: 0.2,
                                                                     3: 0.3}
    trial.report(0.4, 4)
    study.tell(trial, 0.4)
    final = reader.get_trial(trial._trial_id)
    assert final.state == TrialState.COMPLETE and len(final.intermediate_values) == 5
    storage_pkg.close_storage(sqlite_url)


REPORTER = """
import sys, time
import optuna
import losstune.storage as storage_pkg
url = sys.argv[1]
storage = storage_pkg.get_storage(url, storage_pkg.StorageSettings(report_interval=0.5))
study = optuna.create_study(study_name="killed", storage=storage)
trial = study.ask()
for step in range(10_000):
    trial.report(float(step), step)
    print(step, flush=True)
    time.sleep(0.05)
"""


def test_a_killed_worker_loses_at_most_report_interval_of_reports(sqlite_url: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", REPORTER, sqlite_url], cwd=REPO,
                            env=subprocess_env(), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    last = -1
    while last < 40:  # about 2 s of reports
        last = int(proc.stdout.readline())
    proc.kill()
    proc.wait(timeout=30)
    trial = optuna.load_study(study_name="killed", storage=_reader(sqlite_url)).trials[0]
    assert trial.state == TrialState.RUNNING
    stored = sorted(trial.intermediate_values)
    assert stored == list(range(len(stored)))  # a prefix, none lost in between
    # reports come every 0.05 s and are written every 0.5 s: at most ~10 (+ 1 in flight) lost
    assert last - stored[-1] <= 12, (last, stored[-1])


def test_sqlite_commits_use_synchronous_normal_unless_durable(sqlite_url: str) -> None:
    storage_pkg.close_storage(sqlite_url)
    storage = storage_pkg.get_storage(sqlite_url)
    with storage.engine.connect() as con:
        assert con.execute(sqlalchemy.text("PRAGMA synchronous")).scalar() == 1  # NORMAL
    storage_pkg.close_storage(sqlite_url)
    storage = storage_pkg.get_storage(sqlite_url,
                                      storage_pkg.StorageSettings(durable_commits=True))
    with storage.engine.connect() as con:
        assert con.execute(sqlalchemy.text("PRAGMA synchronous")).scalar() == 2  # FULL
    storage_pkg.close_storage(sqlite_url)


@pytest.mark.postgres
def test_postgresql_sessions_commit_asynchronously_with_a_fixed_pool() -> None:
    url = require_postgres()
    storage_pkg.close_storage(url)
    storage = storage_pkg.get_storage(url)
    assert storage.engine.pool.size() == storage_pkg.POOL_SIZE
    assert storage.engine.pool._max_overflow == 0
    with storage.engine.connect() as con:
        assert con.execute(sqlalchemy.text("SHOW synchronous_commit")).scalar() == "off"
    assert storage_pkg.get_storage(url).engine is storage.engine  # one pool per process
    storage_pkg.close_storage(url)
    durable = storage_pkg.get_storage(url, storage_pkg.StorageSettings(durable_commits=True))
    with durable.engine.connect() as con:
        assert con.execute(sqlalchemy.text("SHOW synchronous_commit")).scalar() == "on"
    storage_pkg.close_storage(url)
    name = unique_name()
    with study_cleanup(name, url):  # and a trial's attributes and reports arrive intact
        study = optuna.create_study(study_name=name, storage=storage_pkg.get_storage(url))
        trial = study.ask()
        storage_pkg.set_user_attrs(trial, {"a": 1, "b": {"c": [1, 2]}})
        trial.report(0.5, 0)
        study.tell(trial, 1.0)
        stored = _reader(url).get_trial(trial._trial_id)
        assert stored.user_attrs == {"a": 1, "b": {"c": [1, 2]}}
        assert stored.intermediate_values == {0: 0.5}


class _Counting(optuna.pruners.BasePruner):
    def __init__(self) -> None:
        self.asked: list[int] = []

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        self.asked.append(trial.last_step)
        return trial.last_step == 7


def test_paced_pruner_asks_at_most_once_per_interval() -> None:
    now = [0.0]
    inner = _Counting()
    pruner = PacedPruner(inner, interval=1.0, clock=lambda: now[0])
    study = optuna.create_study(pruner=pruner)
    trial = study.ask()
    decisions = []
    for step in range(10):  # epochs of 0.4 s: asked at 0, 1.2, 2.4, 3.6 s -> steps 0, 3, 6, 9
        now[0] = 0.4 * step
        trial.report(1.0, step)
        decisions.append(trial.should_prune())
    assert inner.asked == [0, 3, 6, 9] and not any(decisions)
    slow = study.ask()  # epochs longer than the interval: every one is asked, as before
    inner.asked.clear()
    for step in range(8):
        now[0] = 100 + 1.5 * step
        slow.report(1.0, step)
        if slow.should_prune():
            break
    assert inner.asked == list(range(8)) and step == 7
    assert isinstance(paced(optuna.pruners.MedianPruner()), PacedPruner)
    assert isinstance(paced(optuna.pruners.NopPruner()), optuna.pruners.NopPruner)


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                                  pytest.param("mysql", marks=pytest.mark.mysql)])
def test_trials_read_back_exactly_as_optuna_reads_them(kind: str, sqlite_url: str) -> None:
    """losstune's plain-SELECT trial reader builds the same FrozenTrials as Optuna's ORM one,
    on trials of every state and value kind."""
    from tests.storage_tests.servers import require_mysql

    url = {"sqlite": lambda: sqlite_url, "postgres": require_postgres,
           "mysql": require_mysql}[kind]()
    name = unique_name("read")
    ours = storage_pkg.get_storage(url, storage_pkg.StorageSettings(report_interval=0))
    plain = RDBStorage(url)
    with study_cleanup(name, url):
        study = optuna.create_study(study_name=name, storage=ours,
                                    directions=["maximize", "minimize"])
        for i, (values, state) in enumerate([([1.0, float("inf")], TrialState.COMPLETE),
                                             ([float("-inf"), -2.5], TrialState.COMPLETE),
                                             (None, TrialState.FAIL), (None, None)]):
            trial = study.ask()
            trial.suggest_float("lr", 1e-4, 1e-1, log=True)
            trial.suggest_int("epochs", 1, 9, step=2)
            trial.suggest_categorical("loss.name", ["ce", None, 2.5, True])
            storage_pkg.set_user_attrs(trial, {"config": {"a": [1, 2, None]}, "n": i})
            trial.storage.set_trial_system_attr(trial._trial_id, "sys", {"k": i})
            for step, v in enumerate([0.5, float("nan"), float("inf"), -float("inf")]):
                trial.storage.set_trial_intermediate_value(trial._trial_id, step, v)
            if state is not None:
                study.tell(trial, values, state=state)
        study.enqueue_trial({"lr": 0.01})  # a WAITING trial with fixed params
        study_id = study._study_id
        backend = ours
        mine = backend._get_trials(study_id, None, set(), -1)
        theirs = plain._get_trials(study_id, None, set(), -1)
        assert len(mine) == 5 and [_as_dict(t) for t in mine] == [_as_dict(t) for t in theirs]
        assert _as_dict(backend.get_trial(mine[3]._trial_id)) == \
            _as_dict(plain.get_trial(mine[3]._trial_id))
        some = {mine[1]._trial_id, mine[4]._trial_id}  # what Optuna's cache asks for
        assert [t.number for t in backend._get_trials(study_id, None, some,
                                                      mine[2]._trial_id)] == [1, 3, 4]
        running = backend._get_trials(study_id, (TrialState.RUNNING,), set(), -1)
        assert [t.number for t in running] == [3]
        with pytest.raises(KeyError):
            backend.get_trial(10**9)
    with pytest.raises(KeyError):
        backend._get_trials(study_id, None, set(), -1)
    plain.engine.dispose()
    storage_pkg.close_storage(url)


def _as_dict(trial: optuna.trial.FrozenTrial) -> dict[str, object]:
    """A FrozenTrial as comparable data (NaN made equal to itself)."""
    import math

    def same(v: object) -> object:
        return "nan" if isinstance(v, float) and math.isnan(v) else v

    d = dict(trial.__dict__)
    d["intermediate_values"] = {k: same(v) for k, v in trial.intermediate_values.items()}
    return d


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_parameters_are_written_with_the_trials_first_write(kind: str, sqlite_url: str) -> None:
    """A trial's sampled parameters are checked at once, seen by this process at once, and
    written in the transaction of the trial's first attributes (or before its state
    changes), not one transaction each."""
    url = sqlite_url if kind == "sqlite" else require_postgres()
    name = unique_name("params")
    storage = storage_pkg.get_storage(url)
    with study_cleanup(name, url):
        study = optuna.create_study(study_name=name, storage=storage)
        writes: list[str] = []  # statements that write, each with the commit after it

        def on_statement(_con: object, _cur: object, statement: str, *_: object) -> None:
            if not statement.lstrip().upper().startswith("SELECT"):
                writes.append(statement.split("(")[0].strip())

        sqlalchemy.event.listen(storage.engine, "after_cursor_execute", on_statement)
        sqlalchemy.event.listen(storage.engine, "commit",
                                lambda con: writes.append("COMMIT") if writes else None)
        trial = study.ask()
        writes.clear()
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        loss = trial.suggest_categorical("loss.name", ["ce", "bce"])
        assert writes == [], "a parameter was written in a transaction of its own"
        assert storage.get_trial(trial._trial_id).params == {"lr": lr, "loss.name": loss}
        assert _reader(url).get_trial(trial._trial_id).params == {}  # not written yet
        storage_pkg.set_user_attrs(trial, {"config": {"lr": lr}})
        assert writes == ["INSERT INTO trial_params", "INSERT INTO trial_user_attributes",
                          "COMMIT"]  # one transaction
        written = _reader(url).get_trial(trial._trial_id)
        assert written.params == {"lr": lr, "loss.name": loss}
        assert written.user_attrs == {"config": {"lr": lr}}

        # a single attribute (Optuna's own call) writes the buffered parameters too
        third = study.ask()
        epochs = third.suggest_int("epochs", 1, 5)
        third.set_user_attr("owner", "me")
        assert _reader(url).get_trial(third._trial_id).params == {"epochs": epochs}
        study.tell(third, state=TrialState.FAIL)

        # a distribution that conflicts with the study's raises at suggest, as in Optuna:
        # known to this study object, or read from the database (a study loaded anew)
        other = study.ask()
        with pytest.raises(ValueError, match="different distribution"):
            other.suggest_int("lr", 1, 3)
        fresh = optuna.load_study(study_name=name, storage=storage).ask()
        with pytest.raises(ValueError, match="different distribution"):
            fresh.suggest_categorical("lr", ["a", "b"])
        study.tell(fresh, state=TrialState.FAIL)
        # a trial that fails before any write still records its parameters
        epochs = other.suggest_int("epochs", 1, 5)
        study.tell(other, state=TrialState.FAIL)
        failed = _reader(url).get_trial(other._trial_id)
        assert failed.state == TrialState.FAIL and failed.params == {"epochs": epochs}
    storage_pkg.close_storage(url)


def test_state_changes_keep_optunas_rules(sqlite_url: str) -> None:
    """losstune's three-statement state change answers as Optuna's: values and end time of a
    finished trial, a WAITING trial taken once, a finished trial not updatable."""
    storage = storage_pkg.get_storage(sqlite_url)
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    study.enqueue_trial({"x": 1.0})
    waiting = study.get_trials(deepcopy=False)[0]._trial_id
    assert storage.set_trial_state_values(waiting, TrialState.RUNNING) is True
    assert storage.set_trial_state_values(waiting, TrialState.RUNNING) is False  # taken
    assert storage.set_trial_state_values(waiting, TrialState.COMPLETE, [0.5, float("inf")])
    done = _reader(sqlite_url).get_trial(waiting)
    assert done.state == TrialState.COMPLETE and done.values == [0.5, float("inf")]
    assert done.datetime_start is not None and done.datetime_complete >= done.datetime_start
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_state_values(waiting, TrialState.FAIL)
    with pytest.raises(KeyError):
        storage.set_trial_state_values(10**9, TrialState.FAIL)


def test_stale_trials_are_looked_for_once_per_heartbeat_interval(sqlite_url: str) -> None:
    """Optuna looks for stale trials before every trial; losstune at most once per heartbeat
    interval and process (a trial is stale only after the longer grace period)."""
    storage = storage_pkg.get_storage(sqlite_url, storage_pkg.StorageSettings(
        heartbeat_interval=1, grace_period=2))
    study = optuna.create_study(storage=storage)
    statements: list[int] = []
    sqlalchemy.event.listen(storage.engine, "after_cursor_execute",
                            lambda *a: statements.append(1))
    assert storage._get_stale_trial_ids(study._study_id) == []
    looked = len(statements)
    assert looked > 0
    assert storage._get_stale_trial_ids(study._study_id) == []
    assert len(statements) == looked  # within the interval: not again
    time.sleep(1.1)
    storage._get_stale_trial_ids(study._study_id)
    assert len(statements) > looked


def test_alembic_scripts_are_parsed_once_and_new_databases_stamped_at_head(tmp_path) -> None:
    from optuna.storages._rdb.storage import _VersionManager

    from losstune.storage.rdb import _share_alembic_script

    urls = [f"sqlite:///{tmp_path / name}.db" for name in ("a", "b")]
    storage_pkg.get_storage(urls[0])
    _share_alembic_script()  # idempotent: a second call does not wrap the wrapper
    storage_pkg.get_storage(urls[1])
    first = _VersionManager._create_alembic_script(None)
    assert _VersionManager._create_alembic_script(None) is first
    head = first.get_current_head()
    for url in urls:
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as conn:
            stamped = conn.execute(sqlalchemy.text("SELECT version_num FROM alembic_version"))
            assert [row[0] for row in stamped] == [head]
        engine.dispose()
        RDBStorage(url)  # Optuna's own compatibility check accepts the database


def _as_datetime(value: object) -> datetime.datetime:
    """A timestamp as SQLite (text) or a server (datetime) returns it, naive."""
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    assert isinstance(value, datetime.datetime)
    return value.replace(tzinfo=None)


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                                  pytest.param("mysql", marks=pytest.mark.mysql)])
def test_a_heartbeat_is_one_upsert_and_stale_trials_are_still_found(kind: str,
                                                                    sqlite_url: str) -> None:
    from tests.storage_tests.servers import require_mysql

    url = {"sqlite": lambda: sqlite_url, "postgres": require_postgres,
           "mysql": require_mysql}[kind]()
    name = unique_name("beat")
    storage = storage_pkg.get_storage(url)
    with study_cleanup(name, url):
        study = optuna.create_study(study_name=name, storage=storage)
        trial = study.ask()
        statements: list[str] = []

        def on_statement(_con: object, _cur: object, statement: str, *_: object) -> None:
            statements.append(statement)

        sqlalchemy.event.listen(storage.engine, "after_cursor_execute", on_statement)
        try:
            storage.record_heartbeat(trial._trial_id)
            storage.record_heartbeat(trial._trial_id)  # the row exists now: updated in place
        finally:
            sqlalchemy.event.remove(storage.engine, "after_cursor_execute", on_statement)
        assert len(statements) == 2, statements
        assert all("trial_heartbeats" in s for s in statements), statements
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as conn:  # committed: another connection sees one row
            rows = conn.execute(sqlalchemy.text(
                "SELECT heartbeat FROM trial_heartbeats WHERE trial_id = :t"),
                {"t": trial._trial_id}).all()
            now = conn.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar()
        engine.dispose()
        assert len(rows) == 1
        assert abs((_as_datetime(now) - _as_datetime(rows[0][0])).total_seconds()) < 60
        # Optuna's stale-trial search reads these rows: a fresh heartbeat is not stale, one
        # older than the grace period is
        view = storage.view(heartbeat_interval=1, grace_period=1,
                            heartbeat_stale_trial_callback=None)
        assert view._get_stale_trial_ids(study._study_id) == []
        time.sleep(2.2)
        assert view._get_stale_trial_ids(study._study_id) == [trial._trial_id]
