"""losstune's RDB storage: Optuna's ``RDBStorage`` tuned for many short trials.

What it adds to Optuna's class, and why:

* **Buffered reports** (:class:`ReportBuffer`): ``trial.report(value, step)`` is kept in memory
  and written in one transaction every ``report_interval`` seconds, together with the trial's
  attributes, and before its state changes. Pruners never need the database for the trial's own
  values (Optuna hands them the trial as the worker knows it), so pruning is unchanged; a worker
  that dies loses at most ``report_interval`` seconds of the intermediate values of a trial that
  is failed and retried anyway.
* **One transaction for many attributes** (:meth:`LosstuneRDBStorage.set_trial_user_attrs`):
  a trial's results (about 25 attributes) are one multi-row upsert instead of 25 transactions.
* **Buffered parameters**: the parameters a trial of this process samples are checked against
  the study's distributions at once (a conflict raises at ``suggest_*`` as in Optuna) and
  written with the trial's next write, in the same transaction: the first attributes a
  losstune trial sets (its config), milliseconds after sampling, or its state change. This
  process's reads see them at once; a worker killed in between leaves a trial without
  parameters, which is failed as stale like any trial of a dead worker.
* **Reads without a transaction on server databases**: a read is its statements' round trips,
  without ``BEGIN``/``COMMIT`` (under PostgreSQL's READ COMMITTED each statement of a
  transaction sees its own snapshot anyway).
* **Cheap commits**: SQLite runs ``synchronous=NORMAL`` under WAL (a power cut can lose the
  last transactions, never corrupt the file; a killed process loses nothing); PostgreSQL
  sessions of losstune run ``synchronous_commit=off`` (a server crash can lose the last
  fraction of a second of commits, never corrupt the database) unless
  ``StorageSettings.durable_commits`` is set.
* **Explicit connection pools** for server databases (``pool_size`` connections, no overflow),
  shared by every storage object of a process and by its study locks, so a process holds at most
  ``pool_size`` connections to one database (see ``docs/distributed.md``).
* **Schema creation under a database lock**: Optuna creates its tables when a storage opens; two
  processes doing that on an empty database collide. losstune creates them under
  ``pg_advisory_lock`` / ``GET_LOCK`` (a file lock beside an SQLite file) and retries once if
  something else raced it.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from losstune.storage.base import (
    StorageError,
    StorageSettings,
    _prepare_sqlite,
    backend_of,
    mask_url,
    password_forms,
    quiet_experimental,
    sqlite_path,
)

logger = logging.getLogger(__name__)

#: ``pg_advisory_lock`` key (and ``GET_LOCK`` name stem) that serialises schema creation.
SCHEMA_LOCK_KEY = int.from_bytes(hashlib.sha256(b"losstune:schema").digest()[:8], "big",
                                 signed=True)


class ReportBuffer:
    """Keeps per-epoch reports of running trials in memory and writes them in batches.

    Mixed into a storage class that implements ``_write_trial(trial_id, reports, attrs)``
    (one transaction or one request). ``report_interval <= 0`` writes every report at once.
    """

    report_interval: float = 1.0
    #: the clock of the flush interval (a benchmark can replay a trial's epoch times on it)
    clock: Callable[[], float] = staticmethod(time.monotonic)

    def _init_reports(self, interval: float) -> None:
        self.report_interval = interval
        self._pending: dict[int, dict[int, float]] = {}
        self._last_flush: dict[int, float] = {}
        self._pending_lock = threading.Lock()

    def _write_trial(self, trial_id: int, reports: Mapping[int, float],
                     attrs: Mapping[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _take_pending(self, trial_id: int) -> dict[int, float]:
        with self._pending_lock:
            if trial_id in self._last_flush:  # a trial this process reports for
                self._last_flush[trial_id] = self.clock()
            return self._pending.pop(trial_id, {})

    def set_trial_intermediate_value(self, trial_id: int, step: int,
                                     intermediate_value: float) -> None:
        if self.report_interval <= 0:
            self._write_trial(trial_id, {step: intermediate_value}, {})
            return
        now = self.clock()
        with self._pending_lock:
            self._pending.setdefault(trial_id, {})[step] = intermediate_value
            due = now - self._last_flush.setdefault(trial_id, now) >= self.report_interval
        if due:
            self.flush_reports(trial_id)

    def flush_reports(self, trial_id: int) -> None:
        """Write the buffered reports of ``trial_id`` now (one transaction)."""
        pending = self._take_pending(trial_id)
        if pending:
            self._write_trial(trial_id, pending, {})

    def set_trial_user_attrs(self, trial_id: int, attrs: Mapping[str, Any]) -> None:
        """Set several user attributes of a running trial (and its buffered reports) at once."""
        self._write_trial(trial_id, self._take_pending(trial_id), dict(attrs))

    def _finish_reports(self, trial_id: int) -> None:
        """Before a trial's state changes: write its buffered reports; forget it."""
        pending = self._take_pending(trial_id)
        with self._pending_lock:
            self._last_flush.pop(trial_id, None)
        if pending:
            try:
                self._write_trial(trial_id, pending, {})
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # finished elsewhere (failed as stale): the state change will say so

    def _with_pending(self, trial: FrozenTrial) -> FrozenTrial:
        """``trial`` with this process's buffered reports (read-your-writes)."""
        with self._pending_lock:
            pending = dict(self._pending.get(trial._trial_id, {}))
        if pending and trial.state == TrialState.RUNNING:
            trial.intermediate_values.update(pending)
        return trial


class LosstuneRDBStorage(ReportBuffer, RDBStorage):
    """``RDBStorage`` with buffered reports, batched attributes and cheap commits.

    Create it through :func:`losstune.storage.get_storage`, which shares one engine (and its
    connection pool) per database among every storage object of a process.
    """

    def __init__(self, url: str, *, engine_kwargs: dict[str, Any], report_interval: float,
                 durable_commits: bool, **kwargs: Any) -> None:
        backend = url.split("://", 1)[0].split("+", 1)[0]
        _share_alembic_script()
        with _schema_lock(url, backend):
            try:
                super().__init__(url, engine_kwargs=engine_kwargs, **kwargs)
            except Exception as exc:  # noqa: BLE001 - a client outside losstune raced us
                if not _looks_like_schema_race(exc):
                    raise
                logger.info("schema creation raced another client (%s); retrying once",
                            type(exc).__name__)
                time.sleep(0.5)
                super().__init__(url, engine_kwargs=engine_kwargs, **kwargs)
        self._init_reports(report_interval)
        #: parameters sampled by trials of this process, not written yet:
        #: ``{trial_id: {name: (internal value, distribution)}}``
        self._pending_params: dict[int, dict[str, tuple[float, Any]]] = {}
        #: trials this process started (created, or took from the queue): their parameters
        #: are buffered; any other trial's are written at once, as Optuna does
        self._own_trials: set[int] = set()
        #: trials this process just created, as the creation returned them: the read that
        #: Optuna's ``Trial`` makes right after is answered from here once
        self._fresh: dict[int, FrozenTrial] = {}
        #: when this process last looked for stale trials, per study
        self._stale_checked: dict[int, float] = {}
        _tune_sessions(self.engine, backend, durable_commits=durable_commits)
        self._reads_engine = (self.engine.execution_options(isolation_level="AUTOCOMMIT")
                              if backend in ("postgresql", "mysql") else None)

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled into another process (Ray, Tune): reopen through get_storage there, which
        # shares that process's engine instead of creating one per unpickled copy
        settings = StorageSettings(
            heartbeat_interval=self.heartbeat_interval or 20,
            grace_period=self.grace_period or 60,
            max_retry=getattr(self.heartbeat_stale_trial_callback, "_max_retry", 3),
            report_interval=self.report_interval,
        )
        return (open_rdb, (self.url, settings))

    def view(self, *, heartbeat_interval: int | None, grace_period: int | None,
             heartbeat_stale_trial_callback: Any,
             report_interval: float | None = None) -> LosstuneRDBStorage:
        """A storage object sharing this one's engine, sessions and report buffer, with other
        heartbeat settings (and report interval)."""
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        if report_interval is not None:
            other.report_interval = report_interval
        other.heartbeat_interval = heartbeat_interval
        other.grace_period = grace_period
        other.heartbeat_stale_trial_callback = heartbeat_stale_trial_callback
        other.failed_trial_callback = heartbeat_stale_trial_callback
        return other

    # ------------------------------------------------------------------ writes
    @contextlib.contextmanager
    def _session(self) -> Iterator[Any]:
        import sqlalchemy.exc

        session = self.scoped_session()
        try:
            yield session
            session.commit()
        except sqlalchemy.exc.SQLAlchemyError as exc:
            session.rollback()
            raise optuna.exceptions.StorageInternalError(
                f"a losstune storage write failed: {type(exc).__name__}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def _write_trial(self, trial_id: int, reports: Mapping[int, float],
                     attrs: Mapping[str, Any]) -> None:
        """One transaction: the trial's buffered parameters, then ``reports`` and ``attrs``."""

        with self._pending_lock:
            params = self._pending_params.pop(trial_id, None)
        if not reports and not attrs and not params:
            return
        try:
            self._write_trial_rows(trial_id, reports, attrs, params or {})
        except BaseException:
            if params:  # not written: keep them for the next write of the trial
                with self._pending_lock:
                    self._pending_params.setdefault(trial_id, {}).update(
                        {k: v for k, v in params.items()
                         if k not in self._pending_params.get(trial_id, {})})
            raise

    def _write_trial_rows(self, trial_id: int, reports: Mapping[int, float],
                          attrs: Mapping[str, Any],
                          params: Mapping[str, tuple[float, Any]]) -> None:
        from optuna import distributions
        from optuna.storages._rdb import models
        from sqlalchemy import insert, select

        with self._session() as session:
            state = session.execute(
                select(models.TrialModel.state).where(models.TrialModel.trial_id == trial_id)
            ).scalar_one_or_none()
            if state is None:
                raise KeyError(f"No trial with trial_id {trial_id} exists.")
            self.check_trial_is_updatable(trial_id, state)
            if params:
                session.execute(insert(models.TrialParamModel.__table__), [
                    {"trial_id": trial_id, "param_name": name, "param_value": value,
                     "distribution_json": distributions.distribution_to_json(dist)}
                    for name, (value, dist) in params.items()])
            if reports:
                rows = []
                for step, value in sorted(reports.items()):
                    stored, kind = models.TrialIntermediateValueModel \
                        .intermediate_value_to_stored_repr(float(value))
                    rows.append({"trial_id": trial_id, "step": int(step),
                                 "intermediate_value": stored, "intermediate_value_type": kind})
                self._upsert(session, models.TrialIntermediateValueModel, rows,
                             keys=("trial_id", "step"),
                             update=("intermediate_value", "intermediate_value_type"))
            if attrs:
                rows = [{"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
                        for key, value in attrs.items()]
                self._upsert(session, models.TrialUserAttributeModel, rows,
                             keys=("trial_id", "key"), update=("value_json",))

    def record_heartbeat(self, trial_id: int) -> None:
        """One upsert stamped with the database's clock, as Optuna's heartbeat is (Optuna reads
        the row, then inserts it or locks and updates it: three to five round trips). On
        PostgreSQL and MySQL it runs in autocommit: one round trip."""
        stmt = _heartbeat_statement(self.engine.name)
        if stmt is None:  # pragma: no cover - a dialect without an upsert
            super().record_heartbeat(trial_id)
            return
        with self._reader() as connection:
            connection.execute(stmt, {"trial_id": trial_id})

    def _upsert(self, session: Any, model: Any, rows: list[dict[str, Any]], *,
                keys: tuple[str, ...], update: tuple[str, ...]) -> None:
        """INSERT ... ON CONFLICT / ON DUPLICATE KEY UPDATE of ``rows``, executed as one
        statement with many parameter sets (compiled once per process)."""
        stmt = _upsert_statement(self.engine.name, model, keys, update)
        if stmt is not None:
            session.execute(stmt, rows)
            return
        for row in rows:  # pragma: no cover - other dialects: row by row, one transaction
            existing = session.query(model).filter_by(**{k: row[k] for k in keys}).one_or_none()
            if existing is None:
                session.add(model(**row))
            else:
                for c in update:
                    setattr(existing, c, row[c])

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Any = None) -> bool:
        if state != TrialState.RUNNING:
            with self._pending_lock:
                self._fresh.pop(trial_id, None)
            self._finish_params(trial_id)
            self._finish_reports(trial_id)
        changed = self._set_state_values(trial_id, state, values)
        if state == TrialState.RUNNING and changed:  # taken from the queue by this process
            with self._pending_lock:
                self._own_trials.add(trial_id)
        return changed

    def _set_state_values(self, trial_id: int, state: TrialState, values: Any) -> bool:
        """What Optuna's ``set_trial_state_values`` does (row lock, updatable check, values,
        state, start or end time), in three statements: Optuna loads the trial as an ORM
        object, which reads every table the trial owns (eight statements more)."""
        import datetime

        import sqlalchemy
        from optuna.storages._rdb import models

        trials = models.TrialModel.__table__
        try:
            with self._session() as session:
                current = session.execute(
                    sqlalchemy.select(trials.c.state).where(trials.c.trial_id == trial_id)
                    .with_for_update()).scalar_one_or_none()
                if current is None:
                    raise KeyError(models.NOT_FOUND_MSG)
                self.check_trial_is_updatable(trial_id, current)
                if values is not None:
                    rows = []
                    for objective, value in enumerate(values):
                        stored, kind = models.TrialValueModel.value_to_stored_repr(value)
                        rows.append({"trial_id": trial_id, "objective": objective,
                                     "value": stored, "value_type": kind})
                    if rows:
                        self._upsert(session, models.TrialValueModel, rows,
                                     keys=("trial_id", "objective"),
                                     update=("value", "value_type"))
                if state == TrialState.RUNNING and current != TrialState.WAITING:
                    return False
                update: dict[str, Any] = {"state": state}
                now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)  # naive UTC
                if state == TrialState.RUNNING:
                    update["datetime_start"] = now
                if state.is_finished():
                    update["datetime_complete"] = now
                session.execute(sqlalchemy.update(trials).where(trials.c.trial_id == trial_id)
                                .values(**update))
        except optuna.exceptions.StorageInternalError as exc:
            if isinstance(exc.__cause__, sqlalchemy.exc.IntegrityError):
                return False  # as Optuna: another worker took this WAITING trial
            raise
        return True

    def _create_new_trial(self, study_id: int,
                          template_trial: FrozenTrial | None = None) -> FrozenTrial:
        if template_trial is None and _has_returning(self.engine.name):
            frozen = self._insert_running_trial(study_id)
        else:  # an enqueued or copied trial (several tables), or no INSERT ... RETURNING
            frozen = super()._create_new_trial(study_id, template_trial)
        if frozen.state == TrialState.RUNNING:
            with self._pending_lock:
                self._own_trials.add(frozen._trial_id)
                self._fresh[frozen._trial_id] = copy.deepcopy(frozen)
        return frozen

    def _insert_running_trial(self, study_id: int) -> FrozenTrial:
        """A new RUNNING trial numbered after the study's others, as Optuna creates one (the
        study's row locked while its trials are counted), in two statements instead of four
        and an ORM flush."""
        import datetime

        import sqlalchemy
        from optuna.storages._rdb import models

        trials = models.TrialModel.__table__
        studies = models.StudyModel.__table__
        for attempt in range(1, 6):  # Optuna retries too: deadlocks of distributed workers
            now = datetime.datetime.now(datetime.UTC)
            try:
                with self._session() as session:
                    if session.execute(sqlalchemy.select(studies.c.study_id)
                                       .where(studies.c.study_id == study_id)
                                       .with_for_update()).first() is None:
                        raise KeyError(models.NOT_FOUND_MSG)
                    count = sqlalchemy.select(
                        sqlalchemy.func.count(trials.c.trial_id),
                        sqlalchemy.literal(study_id, sqlalchemy.Integer),
                        sqlalchemy.literal(TrialState.RUNNING.name, trials.c.state.type),
                        sqlalchemy.literal(now.replace(tzinfo=None), sqlalchemy.DateTime),
                    ).where(trials.c.study_id == study_id)
                    trial_id, number = session.execute(
                        sqlalchemy.insert(trials).from_select(
                            ["number", "study_id", "state", "datetime_start"], count)
                        .returning(trials.c.trial_id, trials.c.number)).one()
                break
            except optuna.exceptions.StorageInternalError:
                if attempt == 5:
                    raise
                time.sleep(random.random() * 2.0)
        return FrozenTrial(
            number=number, state=TrialState.RUNNING, value=None, values=None,
            datetime_start=now.astimezone().replace(tzinfo=None), datetime_complete=None,
            params={}, distributions={}, user_attrs={}, system_attrs={},
            intermediate_values={}, trial_id=trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        """Optuna's search for RUNNING trials whose heartbeat is older than the grace period,
        at most once per heartbeat interval per study and process (Optuna runs it before every
        trial: eleven statements, a fifth of a short trial's storage work). A trial goes stale
        only after the grace period, so it is failed and retried at most one heartbeat
        interval later than before."""
        now = time.monotonic()
        interval = self.heartbeat_interval or 0
        with self._pending_lock:
            last = self._stale_checked.get(study_id)
            if last is not None and now - last < interval:
                return []
            self._stale_checked[study_id] = now
        return super()._get_stale_trial_ids(study_id)

    # ------------------------------------------------------------------ parameters
    def _set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                         distribution: Any, previous_distribution: Any) -> None:
        """Buffer a parameter of a trial this process runs (written with the trial's next
        write); check it against the study's distribution of that name first."""
        with self._pending_lock:
            own = trial_id in self._own_trials
        if not own:
            super()._set_trial_param(trial_id, param_name, param_value_internal, distribution,
                                     previous_distribution)
            return
        from optuna import distributions

        if previous_distribution is None:
            previous_distribution = self._stored_distribution(trial_id, param_name)
        if previous_distribution is not None:
            distributions.check_distribution_compatibility(previous_distribution, distribution)
        with self._pending_lock:
            self._pending_params.setdefault(trial_id, {})[param_name] = (
                float(param_value_internal), distribution)

    def _stored_distribution(self, trial_id: int, param_name: str) -> Any:
        """The distribution of ``param_name`` in the study of ``trial_id`` (any trial's: Optuna
        keeps them compatible), None if no trial has it yet; KeyError if there is no such
        trial."""
        from optuna import distributions
        from optuna.storages._rdb import models
        from sqlalchemy import select

        trials = models.TrialModel.__table__
        params = models.TrialParamModel.__table__
        study = select(trials.c.study_id).where(trials.c.trial_id == trial_id) \
            .scalar_subquery()
        with self._reader() as reader:
            text = reader.execute(
                select(params.c.distribution_json)
                .join(trials, trials.c.trial_id == params.c.trial_id)
                .where((trials.c.study_id == study) & (params.c.param_name == param_name))
                .limit(1)).scalar()
            # a stored distribution implies the trial exists; else ask (KeyError if not)
            if text is None and reader.execute(
                    select(trials.c.trial_id).where(trials.c.trial_id == trial_id)) \
                    .first() is None:
                raise KeyError(models.NOT_FOUND_MSG)
        return None if text is None else distributions.json_to_distribution(text)

    def get_trial_param(self, trial_id: int, param_name: str) -> float:
        with self._pending_lock:
            pending = self._pending_params.get(trial_id, {}).get(param_name)
        if pending is not None:
            return pending[0]
        return super().get_trial_param(trial_id, param_name)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        """One user attribute, written with the trial's buffered parameters and reports (one
        transaction, as :meth:`set_trial_user_attrs`)."""
        self.set_trial_user_attrs(trial_id, {key: value})

    def _finish_params(self, trial_id: int) -> None:
        """Before a trial's state changes: write its buffered parameters, and its buffered
        reports with them (one transaction; :meth:`_finish_reports` then finds none); forget
        the trial."""
        try:
            self._write_trial(trial_id, self._take_pending(trial_id), {})
        except optuna.exceptions.UpdateFinishedTrialError:
            with self._pending_lock:  # finished elsewhere: the state change will say so
                self._pending_params.pop(trial_id, None)
        finally:
            with self._pending_lock:
                self._own_trials.discard(trial_id)

    def _with_pending(self, trial: FrozenTrial) -> FrozenTrial:
        """``trial`` with this process's buffered reports and parameters."""
        trial = super()._with_pending(trial)
        with self._pending_lock:
            params = dict(self._pending_params.get(trial._trial_id, {}))
        if params and trial.state == TrialState.RUNNING:
            for name, (value, dist) in params.items():
                trial.distributions[name] = dist
                trial.params[name] = dist.to_external_repr(value)
        return trial

    # ------------------------------------------------------------------ reads
    # Optuna loads trials through ORM objects: a query per relationship and an object per row.
    # These read the same tables with two plain SELECTs and build the same FrozenTrials (a
    # test compares them with Optuna's on trials of every kind); several times cheaper, which
    # matters because every budget claim and pruning check re-reads the running trials.
    def get_trial(self, trial_id: int) -> FrozenTrial:
        from optuna.storages._rdb import models

        with self._pending_lock:
            fresh = self._fresh.pop(trial_id, None)
        if fresh is not None:  # created by this process an instant ago
            return self._with_pending(fresh)
        with self._reader() as reader:
            trials, _ = self._read_trials(reader, ("one",), {"tid": trial_id})
        if not trials:
            raise KeyError(models.NOT_FOUND_MSG)
        return self._with_pending(trials[0])

    def _get_trials(self, study_id: int, states: Any, included_trial_ids: set[int],
                    trial_id_greater_than: int) -> list[FrozenTrial]:
        from optuna.storages._rdb import models

        included = sorted(i for i in included_trial_ids if i <= trial_id_greater_than)
        params: dict[str, Any] = {"sid": study_id}
        if states is not None:
            params["states"] = list(states)
        mode = "all"
        if trial_id_greater_than > -1:
            mode = "some_or_after" if included else "after"
            params["after"] = trial_id_greater_than
            if included:
                params["some"] = included
        with self._reader() as reader:
            trials, study_found = self._read_trials(
                reader, ("study", states is not None, mode), params)
        if not study_found:
            raise KeyError(models.NOT_FOUND_MSG)
        return [self._with_pending(t) for t in trials]

    @contextlib.contextmanager
    def _reader(self) -> Iterator[Any]:
        """Where reads execute: on PostgreSQL and MySQL a pooled connection in autocommit (no
        ``BEGIN``/``COMMIT`` round trips), on SQLite a session (a read transaction)."""
        if self._reads_engine is None:
            with self._session() as session:
                yield session
            return
        import sqlalchemy.exc

        try:
            with self._reads_engine.connect() as connection:
                yield connection
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise optuna.exceptions.StorageInternalError(
                f"a losstune storage read failed: {type(exc).__name__}") from exc

    def _read_trials(self, session: Any, shape: tuple[Any, ...],
                     params: dict[str, Any]) -> tuple[list[FrozenTrial], bool]:
        """The trials that the query of ``shape`` (:func:`_trials_query`) selects with
        ``params``, each with everything it owns, from one statement; and whether the study
        exists (for a study's trials; True for one trial)."""
        import datetime

        from optuna import distributions
        from optuna.storages._rdb import models

        rows: list[tuple[Any, ...]] = []
        params_of: dict[int, list[Any]] = {}
        values: dict[int, dict[int, float]] = {}
        user: dict[int, dict[str, Any]] = {}
        system: dict[int, dict[str, Any]] = {}
        steps: dict[int, dict[int, float]] = {}
        value_type = models.TrialValueModel.TrialValueType
        step_type = models.TrialIntermediateValueModel.TrialIntermediateValueType
        study_found = shape[0] == "one"
        for kind, tid, order, name, number, type_name, text, start, complete in \
                session.execute(_trials_query(shape), params):
            if kind == 5:
                rows.append((tid, order, TrialState[name], start, complete))
            elif kind == 0:
                params_of.setdefault(tid, []).append((order, name, number, text))
            elif kind == 1:
                values.setdefault(tid, {})[order] = models.TrialValueModel \
                    .stored_repr_to_value(number, value_type[type_name])
            elif kind == 2:
                user.setdefault(tid, {})[name] = json.loads(text)
            elif kind == 3:
                system.setdefault(tid, {})[name] = json.loads(text)
            elif kind == 4:
                steps.setdefault(tid, {})[order] = models.TrialIntermediateValueModel \
                    .stored_repr_to_intermediate_value(number, step_type[type_name])
            else:  # kind 6: the study exists
                study_found = True
        rows.sort(key=lambda r: r[0])

        def local(moment: datetime.datetime | None) -> datetime.datetime | None:
            if moment is None:  # stored as naive UTC, shown as naive local time (as Optuna)
                return None
            return moment.replace(tzinfo=datetime.UTC).astimezone().replace(
                tzinfo=None)

        parsed: dict[str, Any] = {}
        out = []
        for tid, number, state, start, complete in rows:
            names: dict[str, Any] = {}
            dists: dict[str, Any] = {}
            for _, name, value, dist_json in sorted(params_of.get(tid, []),
                                                    key=lambda r: r[0]):
                dist = parsed.get(dist_json)
                if dist is None:
                    dist = parsed[dist_json] = distributions.json_to_distribution(dist_json)
                dists[name] = dist
                names[name] = dist.to_external_repr(value)
            by_objective = values.get(tid)
            out.append(FrozenTrial(
                number=number, state=state, value=None,
                values=[by_objective[i] for i in range(len(by_objective))]
                if by_objective else None,
                datetime_start=local(start), datetime_complete=local(complete),
                params=names, distributions=dists, user_attrs=user.get(tid, {}),
                system_attrs=system.get(tid, {}), intermediate_values=steps.get(tid, {}),
                trial_id=tid,
            ))
        return out, study_found or bool(out)

    def heartbeat_trial_ids(self, study_id: int) -> set[int]:
        """IDs of the study's trials that have a heartbeat row."""
        from optuna.storages._rdb import models

        with self._session() as session:
            rows = (
                session.query(models.TrialHeartbeatModel.trial_id)
                .join(models.TrialModel,
                      models.TrialModel.trial_id == models.TrialHeartbeatModel.trial_id)
                .filter(models.TrialModel.study_id == study_id)
                .all()
            )
        return {r[0] for r in rows}


_upserts: dict[tuple[str, str], Any] = {}


def _upsert_statement(dialect: str, model: Any, keys: tuple[str, ...],
                      update: tuple[str, ...]) -> Any:
    """The upsert statement of ``model`` on ``dialect`` (None where there is none)."""
    import sqlite3

    cache_key = (dialect, model.__tablename__)
    if cache_key in _upserts:
        return _upserts[cache_key]
    table = model.__table__
    stmt: Any = None
    if dialect == "postgresql" or (dialect == "sqlite"
                                   and sqlite3.sqlite_version_info >= (3, 24, 0)):
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        base = insert(table)
        stmt = base.on_conflict_do_update(index_elements=[table.c[k] for k in keys],
                                          set_={c: base.excluded[c] for c in update})
    elif dialect == "mysql":
        from sqlalchemy.dialects.mysql import insert

        base = insert(table)
        stmt = base.on_duplicate_key_update({c: base.inserted[c] for c in update})
    _upserts[cache_key] = stmt
    return stmt


def _heartbeat_statement(dialect: str) -> Any:
    """``trial_heartbeats``' upsert of one trial's heartbeat at the database's ``now()``."""
    cache_key = (dialect, "heartbeat")
    if cache_key not in _upserts:
        import sqlalchemy
        from optuna.storages._rdb import models

        base = _upsert_statement(dialect, models.TrialHeartbeatModel, ("trial_id",),
                                 ("heartbeat",))
        _upserts[cache_key] = None if base is None else base.values(
            trial_id=sqlalchemy.bindparam("trial_id"), heartbeat=sqlalchemy.func.now())
    return _upserts[cache_key]


def _has_returning(dialect: str) -> bool:
    """Whether ``INSERT ... RETURNING`` is there: PostgreSQL, SQLite 3.35 and newer."""
    import sqlite3

    return dialect == "postgresql" or (dialect == "sqlite"
                                       and sqlite3.sqlite_version_info >= (3, 35, 0))


_queries: dict[tuple[Any, ...], Any] = {}


def _trials_query(shape: tuple[Any, ...]) -> Any:
    """One ``UNION ALL`` of the trials a read selects and of everything they own (found
    through the unique indexes that start with ``trial_id``): rows of
    ``(kind, trial_id, order, name, number, type, text, start, complete)`` with kind 5 = the
    trial (order: number, name: state), 0 = parameter (order: param_id, text: distribution),
    1 = value (order: objective), 2 = user attribute, 3 = system attribute (text: JSON),
    4 = intermediate value (order: step), 6 = the study exists.

    ``shape`` is ``("one",)`` (bound ``tid``) or ``("study", with_states, mode)`` (bound
    ``sid``, ``states`` when ``with_states``, and for ``mode`` ``"after"`` the trials after
    ``after``, for ``"some_or_after"`` also those in ``some``). Built once per shape and
    process, so SQLAlchemy compiles each once per dialect."""
    stmt = _queries.get(shape)
    if stmt is None:
        stmt = _queries[shape] = _build_trials_query(shape)
    return stmt


def _build_trials_query(shape: tuple[Any, ...]) -> Any:
    import sqlalchemy
    from optuna.storages._rdb import models
    from sqlalchemy import DateTime, Integer, String, bindparam, cast, literal, null, select

    trials = models.TrialModel.__table__
    if shape[0] == "one":
        where = trials.c.trial_id == bindparam("tid")
    else:
        _, with_states, mode = shape
        where = trials.c.study_id == bindparam("sid")
        if with_states:
            where = where & trials.c.state.in_(
                bindparam("states", expanding=True, type_=trials.c.state.type))
        if mode == "after":
            where = where & (trials.c.trial_id > bindparam("after"))
        elif mode == "some_or_after":
            where = where & sqlalchemy.or_(
                trials.c.trial_id.in_(bindparam("some", expanding=True)),
                trials.c.trial_id > bindparam("after"))
    selected = select(trials.c.trial_id).where(where)
    no_time = cast(null(), DateTime)

    def part(kind: int, model: Any, order: str | None, name: str | None, number: str | None,
             type_: str | None, text: str | None) -> Any:
        table = model.__table__

        def col(c: str | None, label: str) -> Any:
            return (null() if c is None else table.c[c]).label(label)

        # enum columns are different types (PostgreSQL enums): compared as their names
        typ = (null() if type_ is None else cast(table.c[type_], String(16))).label("typ")
        return select(literal(kind, Integer).label("kind"), table.c.trial_id,
                      col(order, "ord"), col(name, "name"), col(number, "num"), typ,
                      col(text, "txt"), no_time.label("t1"), no_time.label("t2")) \
            .where(table.c.trial_id.in_(selected))

    # the trials first: the union's columns take their types (the times are parsed as such)
    head = select(literal(5, Integer).label("kind"), trials.c.trial_id,
                  trials.c.number.label("ord"), cast(trials.c.state, String(16)).label("name"),
                  null().label("num"), null().label("typ"), null().label("txt"),
                  trials.c.datetime_start.label("t1"),
                  trials.c.datetime_complete.label("t2")).where(where)
    parts = [
        head,
        part(0, models.TrialParamModel, "param_id", "param_name", "param_value", None,
             "distribution_json"),
        part(1, models.TrialValueModel, "objective", None, "value", "value_type", None),
        part(2, models.TrialUserAttributeModel, None, "key", None, None, "value_json"),
        part(3, models.TrialSystemAttributeModel, None, "key", None, None, "value_json"),
        part(4, models.TrialIntermediateValueModel, "step", None, "intermediate_value",
             "intermediate_value_type", None),
    ]
    if shape[0] == "study":
        studies = models.StudyModel.__table__
        parts.append(select(literal(6, Integer).label("kind"), studies.c.study_id, null(),
                            null(), null(), null(), null(), no_time, no_time)
                     .where(studies.c.study_id == bindparam("sid")))
    return sqlalchemy.union_all(*parts)


#: A pooled connection idle longer than this is pinged before use (and replaced if the server
#: dropped it); one used more recently is taken as alive. Optuna's ``pool_pre_ping`` pings before
#: every transaction: a round trip per transaction, dozens per trial.
PING_AFTER_IDLE = 1.0


def _tune_sessions(engine: Any, backend: str, *, durable_commits: bool) -> None:
    """Per-connection settings: SQLite ``synchronous=NORMAL`` (WAL), PostgreSQL
    ``synchronous_commit=off`` and no parallel plans; for server databases a ping only after
    :data:`PING_AFTER_IDLE` seconds of idleness. Connections opened while the schema was
    checked are dropped so that every pooled connection has them."""
    import sqlalchemy

    statements = []
    if backend == "sqlite" and not durable_commits:
        statements.append("PRAGMA synchronous=NORMAL")
    elif backend == "postgresql":
        # many small queries: a parallel plan's worker start-up costs more than it saves
        statements.append("SET max_parallel_workers_per_gather TO 0")
        if not durable_commits:
            statements.append("SET synchronous_commit TO OFF")

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for statement in statements:
                cursor.execute(statement)
        finally:
            cursor.close()
        if backend == "postgresql":
            dbapi_connection.commit()  # a SET inside a transaction that rolls back is undone

    if statements:
        sqlalchemy.event.listen(engine, "connect", on_connect)
    if backend in ("postgresql", "mysql"):
        engine.pool._pre_ping = False  # replaced by the idle ping below

        def on_checkin(_dbapi_connection: Any, record: Any) -> None:
            record.info["losstune_idle_since"] = time.monotonic()

        def on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
            since = record.info.get("losstune_idle_since")
            if since is None or time.monotonic() - since < PING_AFTER_IDLE:
                return
            try:
                cursor = dbapi_connection.cursor()
                try:
                    cursor.execute("SELECT 1")
                    cursor.fetchall()
                finally:
                    cursor.close()
                dbapi_connection.rollback()
            except Exception as exc:  # noqa: BLE001 - the pool opens a new connection
                raise sqlalchemy.exc.DisconnectionError(str(exc)) from exc

        sqlalchemy.event.listen(engine, "checkin", on_checkin)
        sqlalchemy.event.listen(engine, "checkout", on_checkout)
    engine.dispose()


@contextlib.contextmanager
def _schema_lock(url: str, backend: str) -> Iterator[None]:
    """Hold a database-wide lock while Optuna creates (or checks) its tables: a file lock
    beside an SQLite file, ``pg_advisory_lock`` / ``GET_LOCK`` on a server."""
    if backend == "sqlite":
        path = sqlite_path(url)
        if path is None:
            yield
            return
        import tempfile

        from filelock import FileLock

        # in the temporary folder, not beside the database: opening a read-only study must
        # write nothing there
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
        with FileLock(str(Path(tempfile.gettempdir()) / f"losstune-schema-{digest}.lock")):
            yield
        return
    if backend not in ("postgresql", "mysql"):
        yield
        return
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as con:
            if backend == "postgresql":
                con.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"),
                            {"k": SCHEMA_LOCK_KEY})
                con.commit()
                try:
                    yield
                finally:
                    con.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"),
                                {"k": SCHEMA_LOCK_KEY})
                    con.commit()
            else:
                database = con.execute(sqlalchemy.text("SELECT DATABASE()")).scalar() or ""
                name = "losstune_schema_" + hashlib.sha256(database.encode()).hexdigest()[:16]
                got = con.execute(sqlalchemy.text("SELECT GET_LOCK(:n, 600)"),
                                  {"n": name}).scalar()
                try:
                    yield
                finally:
                    if got == 1:
                        con.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:n)"), {"n": name})
    finally:
        engine.dispose()


_alembic_lock = threading.Lock()


def _share_alembic_script() -> None:
    """Make Optuna build alembic's migration script directory once per process.

    Opening a storage asks for it up to three times (the head revision, the stamp of a new
    database, the compatibility check), and each time alembic parses every migration file
    again (about 0.14 s each here). The files do not change while a process runs, and the
    directory holds no connection, so one is shared. A no-op if Optuna's internals differ.
    """
    from optuna.storages._rdb import storage as optuna_rdb

    manager = getattr(optuna_rdb, "_VersionManager", None)
    build = getattr(manager, "_create_alembic_script", None)
    if manager is None or build is None or getattr(build, "losstune_shared", False):
        return
    shared: list[Any] = []

    def create_alembic_script(self: Any) -> Any:
        with _alembic_lock:
            if not shared:
                shared.append(build(self))
            return shared[0]

    create_alembic_script.losstune_shared = True  # type: ignore[attr-defined]
    manager._create_alembic_script = create_alembic_script


def _looks_like_schema_race(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    return any(s in text for s in ("already exists", "duplicate key", "uniqueviolation",
                                   "integrityerror", "1050"))


# ---------------------------------------------------------------------- one engine per URL
#: The storage object each process shares per database URL (its engine and pool, its report
#: buffer); the objects that :func:`open_rdb` hands out are views of it.
_bases: dict[tuple[int, str], LosstuneRDBStorage] = {}
_bases_lock = threading.Lock()


def shared_storage(url: str, settings: StorageSettings):  # noqa: ANN202
    """The process's shared storage object for ``url`` (created on first use)."""
    key = (os.getpid(), url)
    with _bases_lock:
        base = _bases.get(key)
    if base is not None:
        return base
    engine_kwargs: dict[str, object] = {"pool_pre_ping": True}
    if backend_of(url) == "sqlite":
        with _schema_lock(url, "sqlite"):
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
    pool = (f"no pool, {settings.sqlite_timeout:g}s lock timeout" if backend_of(url) == "sqlite"
            else f"pool of {settings.pool_size} connection(s), no overflow")
    logger.info("storage opened: %s (%s, %s) in process %d", mask_url(url), backend_of(url),
                pool, os.getpid())
    with _bases_lock:
        return _bases.setdefault(key, base)


def open_rdb(url: str, settings: StorageSettings) -> LosstuneRDBStorage:
    """A view of this process's shared storage for the database ``url`` with ``settings``'
    heartbeat, grace period, retry callback and report interval (``url`` normalised)."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    with quiet_experimental():
        callback = RetryHeartbeatStaleTrialCallback(max_retry=settings.max_retry)
    return shared_storage(url, settings).view(
        heartbeat_interval=settings.heartbeat_interval, grace_period=settings.grace_period,
        heartbeat_stale_trial_callback=callback, report_interval=settings.report_interval)


def close_shared(url: str) -> None:
    """Dispose of this process's engine for ``url`` (the next :func:`open_rdb` reconnects)."""
    with _bases_lock:
        base = _bases.pop((os.getpid(), url), None)
    engine = getattr(base, "engine", None)
    if engine is not None:
        engine.dispose()
