"""The Ray Tune path (``losstune run --launcher ray-tune``): Tune schedules the trials, Optuna
(through Tune's ``OptunaSearch``) samples them and records them in the study's RDB storage, so
they appear in optuna-dashboard like the trials of any other launcher.

What differs from ``--launcher ray`` (see docs/distributed.md):

* Tune asks and tells Optuna from the driver. Optuna's heartbeat only runs inside
  ``optimize()``, so Tune trials have **no heartbeat**: they carry the user attribute
  ``tune_owner`` (driver host, pid and trial number), and ``losstune run`` fails the ones a dead
  driver left RUNNING when it resumes the study
  (:func:`losstune.studies.runner.fail_stale_trials`).
* Early stopping is Tune's scheduler (``ray.scheduler: asha``), not the study's Optuna pruner.
  Upstream ``OptunaSearch`` records a trial that ASHA stopped as COMPLETE with its early-epoch
  value; :class:`StudySearch` records it PRUNED, with the user attributes of its last result.
* The budget is the same: :meth:`StudySearch.suggest` claims trials under
  :func:`losstune.storage.budget_lock` while ``finished + running < n_trials``, and replaces
  failed ones.

This module imports Ray at the top: only :class:`losstune.studies.launchers.tune.TuneLauncher`
imports it, when a Tune study is prepared or launched.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import warnings
from typing import Any

import optuna
from optuna.trial import TrialState
from ray import tune
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

import losstune.storage as storage_pkg
from losstune.objectives import attributes as attrs_schema
from losstune.objectives.attributes import config_attribute, result_attributes
from losstune.objectives.training import NonFiniteLossError, Reporter, run_trial
from losstune.studies.launchers._ray_core import (
    RayCluster,
    announce_plan,
    connect,
    disconnect,
    rebuild_spec,
    spec_for_workers,
)
from losstune.studies.launchers.base import LauncherError, LaunchRequest, WorkerResult
from losstune.studies.optuna_parts import make_sampler
from losstune.studies.runner import (
    StopFlag,
    _fail_heartbeat_stale,
    count_states,
    counted_failures,
    open_storage,
    sampler_seed,
    started_trials,
)
from losstune.studies.secrets import scrub_text
from losstune.studies.spec import StudySpec

logger = logging.getLogger(__name__)

#: Keys of the results a trainable reports to Tune (besides the metric names).
TRIAL_ID_KEY = "losstune_trial_id"
EPOCH_KEY = "losstune_epoch"
ATTRS_KEY = "losstune_attrs"
FINAL_KEY = "losstune_final"
VALUES_KEY = "losstune_values"

NO_HEARTBEAT_NOTE = (
    "note: Ray Tune asks and tells Optuna from the driver, so its trials have no Optuna "
    "heartbeat: if this process dies, its trials stay RUNNING until the next `losstune run` of "
    "this study fails them and queues their retries (they carry the user attribute "
    f"{attrs_schema.TUNE_OWNER!r})."
)


# ---------------------------------------------------------------------- driver: the searcher
class StudySearch(OptunaSearch):
    """``OptunaSearch`` on the study's storage, with losstune's budget and trial records."""

    def __init__(self, spec: StudySpec, url: str, *, n_trials: int, stop: StopFlag | None,
                 deadline: float | None) -> None:
        self._spec = spec
        self._url = url
        self._n_trials = n_trials
        self._stop = stop
        self._deadline = deadline
        self._multi = spec.is_multi_objective
        self._reported: dict[str, set[int]] = {}
        self._waited = 0.0
        self._owner = f"{socket.gethostname()}:{os.getpid()}"
        self.started = 0
        self.stopped_reason = "budget reached"
        modes = ["max" if d == "maximize" else "min" for d in spec.directions]
        names = spec.metric_names
        space = spec.compile_space()
        storage = open_storage(url, spec)
        existing = started_trials(optuna.load_study(study_name=spec.name, storage=storage))
        super().__init__(
            space=space.sample,  # define-by-run: the study's own (conditional) space
            metric=names if self._multi else names[0],
            mode=modes if self._multi else modes[0],
            sampler=make_sampler(spec.sampler.name, spec.sampler.args,
                                 sampler_seed(spec.seed, existing, 0), multi=self._multi),
            study_name=spec.name,
            storage=storage,
        )
        self._failures_before = counted_failures(self._ot_study)  # this run's count

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its searcher to checkpoint the experiment; the Ctrl-C flag is local
        state = self.__dict__.copy()
        state["_stop"] = None
        return state

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the study (every trial, sampler input) lives in the RDB storage,
        and ``losstune run`` resumes it from there."""

    def restore(self, checkpoint_path: str) -> None:
        raise NotImplementedError("resume a losstune study with `losstune run`, not Tune")

    def _finish_reason(self) -> str | None:
        if self._stop is not None and self._stop:
            return self._stop.reason or "stopped"
        if self._deadline is not None and time.time() >= self._deadline:
            return "timeout reached"
        if counted_failures(self._ot_study) - self._failures_before >= self._spec.max_failures:
            return f"max_failures ({self._spec.max_failures}) failed trials reached"
        return None

    def suggest(self, trial_id: str) -> dict | str | None:
        if time.monotonic() - self._waited < 0.5:
            return None  # Tune polls often while it waits: ask the storage at most twice a second
        reason = self._finish_reason()
        if reason:
            self.stopped_reason = reason
            return Searcher.FINISHED
        with storage_pkg.budget_lock(self._url, self._spec.name):
            counts = count_states(self._ot_study)
            finished = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
            if finished >= self._n_trials:
                self.stopped_reason = "budget reached"
                return Searcher.FINISHED
            if finished + counts[TrialState.RUNNING] >= self._n_trials:
                # running trials may still fail and need replacing: wait for them
                self._waited = time.monotonic()
                _fail_heartbeat_stale(self._ot_study)
                return None
            with warnings.catch_warnings():
                # "Heartbeat of storage is supposed to be used with Study.optimize": known, and
                # said once per run (NO_HEARTBEAT_NOTE)
                warnings.filterwarnings("ignore", message=".*Heartbeat of storage.*")
                config = super().suggest(trial_id)
            ot_trial = self._ot_trials[trial_id]
            ot_trial.set_user_attr(attrs_schema.TUNE_OWNER, f"{self._owner}:{ot_trial.number}")
        self.started += 1
        out = dict(config or {})
        out[TRIAL_ID_KEY] = ot_trial._trial_id
        return out

    def _report(self, trial_id: str, result: dict[str, Any]) -> None:
        if self._multi:  # Optuna takes no intermediate values for multi-objective trials
            return
        epoch = result.get(EPOCH_KEY)
        value = result.get(self.metric)
        if epoch is None or value is None or result.get(FINAL_KEY):
            return
        seen = self._reported.setdefault(trial_id, set())
        if int(epoch) not in seen:
            seen.add(int(epoch))
            self._ot_trials[trial_id].report(float(value), int(epoch))

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        self._report(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        self._completed_trials.add(trial_id)
        try:
            self._record(trial_id, result, error)
        except Exception as exc:  # noqa: BLE001 - e.g. a resumed run failed it meanwhile
            logger.warning("could not record Tune trial %s: %s", trial_id,
                           scrub_text(f"{type(exc).__name__}: {exc}", self._url))

    def _record(self, trial_id: str, result: dict[str, Any] | None, error: bool) -> None:
        ot_trial = self._ot_trials[trial_id]
        if result and result.get(ATTRS_KEY):  # one transaction
            storage_pkg.set_user_attrs(ot_trial, json.loads(result[ATTRS_KEY]))
        if error:
            self._ot_study.tell(ot_trial, state=TrialState.FAIL)
        elif not result:
            ot_trial.set_user_attr(attrs_schema.STALE_REASON,
                                   "stopped by Ray Tune before it reported")
            self._ot_study.tell(ot_trial, state=TrialState.FAIL)
        elif result.get(FINAL_KEY):
            values = [float(v) for v in result[VALUES_KEY]]
            self._ot_study.tell(ot_trial, values if self._multi else values[0])
        else:  # stopped early by Tune's scheduler (ASHA): PRUNED, not COMPLETE
            self._report(trial_id, result)
            ot_trial.set_user_attr(attrs_schema.PRUNED_BY, "ray.tune scheduler")
            self._ot_study.tell(ot_trial, state=TrialState.PRUNED)


# ---------------------------------------------------------------------- workers: the trainable
class TuneReporter(Reporter):
    """Adapts Tune to :class:`losstune.objectives.training.Reporter`: one ``tune.report`` per
    epoch, carrying the trial's user attributes so far (so an ASHA-stopped trial keeps them)."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self._attrs = "{}"

    def observe(self, partial: Any) -> None:
        self._attrs = json.dumps(result_attributes(partial))

    def report(self, value: float, step: int) -> None:
        tune.report({self.metric: float(value), EPOCH_KEY: int(step), ATTRS_KEY: self._attrs})

    def should_prune(self) -> bool:
        return False  # Tune's scheduler stops the trial itself


_setups: dict[str, tuple[StudySpec, Any, Any, dict[str, Any]]] = {}
_setup_lock = threading.Lock()


def _setup(spec_data: dict[str, Any], url: str) -> tuple[StudySpec, Any, Any, dict[str, Any]]:
    key = json.dumps(spec_data, sort_keys=True, default=str) + url
    with _setup_lock:
        if key not in _setups:
            spec = rebuild_spec(spec_data)
            _setups[key] = (spec, open_storage(url, spec), spec.compile_space(), spec.template())
        return _setups[key]


def trainable(config: dict[str, Any], *, spec_data: dict[str, Any], url: str) -> None:
    """One Tune trial: build the config from the sampled values, train, report."""
    spec, storage, space, template = _setup(spec_data, url)
    values = dict(config)
    trial_id = int(values.pop(TRIAL_ID_KEY))
    names = spec.metric_names
    try:  # every failure (config included) records why: max_failures counts these
        trial_config = space.to_config(values, template)
        storage.set_trial_user_attrs(trial_id, {  # one transaction (losstune's storages)
            attrs_schema.CONFIG: config_attribute(trial_config),
            attrs_schema.WORKER: f"{socket.gethostname()}:{os.getpid()}"})
        reporter = None if spec.is_multi_objective else TuneReporter(names[0])
        result = run_trial(trial_config, reporter=reporter)
    except Exception as exc:
        attrs: dict[str, Any] = {}
        if isinstance(exc, NonFiniteLossError):  # a NaN/inf loss or value: what the run
            reason = str(exc)  # measured so far (curves, metrics) is kept for diagnosis
            if exc.result is not None:
                attrs = result_attributes(exc.result)
        else:
            reason = f"{type(exc).__name__}: {exc}"
        attrs[attrs_schema.FAIL_REASON] = scrub_text(reason, url)
        try:
            storage.set_trial_user_attrs(trial_id, attrs)  # one transaction
        except Exception:  # noqa: BLE001 - the trial fails anyway
            logger.debug("could not store fail_reason", exc_info=True)
        raise
    final: dict[str, Any] = {name: float(v) for name, v in zip(names, result.values,
                                                                 strict=True)}
    final.update({FINAL_KEY: True, VALUES_KEY: [float(v) for v in result.values],
                  ATTRS_KEY: json.dumps(result_attributes(result))})
    tune.report(final)


# ---------------------------------------------------------------------- the launcher's body
def max_epochs(spec: StudySpec) -> int:
    """The most epochs a trial of ``spec`` can train (ASHA's default ``max_t`` is this + 1:
    each epoch is one Tune iteration, the final result with test metrics one more)."""
    from losstune.search_spaces.params import CategoricalDist, FixedDist, FloatDist, IntDist

    space = spec.compile_space()
    try:
        dist = space.get("train.epochs").dist
    except KeyError:
        from losstune.objectives.config import TrainConfig

        return int(TrainConfig.model_fields["epochs"].default)
    if isinstance(dist, (IntDist, FloatDist)):
        return int(dist.high)
    if isinstance(dist, FixedDist):
        return int(dist.value)
    if isinstance(dist, CategoricalDist):
        return int(max(dist.choices))
    return 100  # pragma: no cover


def make_scheduler(spec: StudySpec) -> Any:
    """``ray.scheduler``: ``none`` (FIFO) or ``asha`` with ``ray.scheduler_args``."""
    if spec.ray.scheduler == "none":
        if spec.ray.scheduler_args:
            raise LauncherError("ray.scheduler_args is set but ray.scheduler is 'none'; set "
                                "`ray.scheduler: asha` or remove the arguments")
        return None
    if spec.is_multi_objective:
        raise LauncherError("ray.scheduler: asha needs a single objective; this study has "
                            f"{len(spec.metric_names)} ({', '.join(spec.metric_names)})")
    from ray.tune.schedulers import ASHAScheduler

    args: dict[str, Any] = {"time_attr": "training_iteration", "grace_period": 1,
                            "reduction_factor": 2, "max_t": max_epochs(spec) + 1}
    args.update(spec.ray.scheduler_args)
    for fixed in ("metric", "mode"):
        if fixed in args:
            raise LauncherError(f"ray.scheduler_args.{fixed}: set by losstune from the study's "
                                "metric; remove it")
    try:
        return ASHAScheduler(metric=spec.metric_names[0],
                             mode="max" if spec.directions[0] == "maximize" else "min", **args)
    except (TypeError, AssertionError, ValueError) as exc:
        raise LauncherError(f"ray.scheduler_args {dict(spec.ray.scheduler_args)} are not valid "
                            f"for ASHA: {exc or type(exc).__name__}") from None


def run_tune(request: LaunchRequest, *, cluster: RayCluster | None = None
             ) -> list[WorkerResult]:
    """Run the study's remaining trials with Ray Tune (the TuneLauncher's body). ``cluster``:
    the connection :meth:`TuneLauncher.prepare` made (None: connect now)."""
    spec, url, workers, echo = request.spec, request.url, request.workers, request.echo
    scheduler = make_scheduler(spec)  # argument errors before Ray starts
    # Our Ctrl-C handler (first press: no new trials; running ones finish) instead of Tune's,
    # and trials in the driver's folder, so that relative paths in study files keep working.
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no Tune tables
    cluster = cluster if cluster is not None else connect(spec, request.address)
    results_dir = tempfile.mkdtemp(prefix="losstune-tune-")
    try:
        plan = announce_plan(request, cluster)
        echo(NO_HEARTBEAT_NOTE)
        if scheduler is None:
            echo("note: Ray Tune path without ray.scheduler: no early stopping (the study's "
                 "Optuna pruner is not used by Tune); set `ray.scheduler: asha` to prune")
        search = StudySearch(spec, url, n_trials=request.n_trials, stop=request.stop,
                             deadline=request.deadline)
        fn = tune.with_parameters(trainable, spec_data=spec_for_workers(
                                     spec, plan.device,
                                     plan.threads.threads if plan.threads else None),
                                  url=url)
        fn = tune.with_resources(fn, {"cpu": plan.num_cpus, "gpu": plan.num_gpus})
        tuner = tune.Tuner(
            fn,
            tune_config=tune.TuneConfig(search_alg=search, scheduler=scheduler, num_samples=-1,
                                        max_concurrent_trials=workers, reuse_actors=True),
            run_config=tune.RunConfig(name=spec.name, storage_path=results_dir, verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=0)),
        )
        tuner.fit()
        return [WorkerResult(started=search.started, reason=search.stopped_reason,
                             pid=os.getpid())]
    finally:
        shutil.rmtree(results_dir, ignore_errors=True)
        disconnect(cluster)


__all__ = ["NO_HEARTBEAT_NOTE", "StudySearch", "TuneReporter", "make_scheduler", "max_epochs",
           "run_tune", "trainable"]
