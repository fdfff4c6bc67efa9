"""Create or resume a study and run its trials against the shared budget.

The budget: ``n_trials`` is the number of finished (COMPLETE + PRUNED) trials the
study should hold. A worker starts a trial only while ``finished + running < n_trials``, checked
and claimed under :func:`losstune.storage.budget_lock`, so any number of workers finish exactly
``n_trials``. FAIL trials do not count; the study stops after ``max_failures`` failed trials.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import optuna
from optuna.trial import TrialState

import losstune.storage as storage_pkg
from losstune.objectives import attributes as attrs_schema
from losstune.objectives.attributes import TrialRecord
from losstune.objectives.errors import LosstuneError
from losstune.studies.secrets import scrub_text
from losstune.studies.spec import StudySpec

logger = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class StudyMismatchError(LosstuneError, ValueError):
    """The study file no longer matches the stored study."""


@dataclass
class RunSummary:
    study_name: str
    storage: str
    n_trials: int
    finished: int
    complete: int
    pruned: int
    failed: int
    started_here: int
    seconds: float
    stopped_reason: str
    created: bool
    stale_failed: list[int] = field(default_factory=list)


def losstune_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("losstune")
    except PackageNotFoundError:
        return "0+unknown"


def git_commit() -> str | None:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(
            ["git", "-C", here, "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def storage_settings(spec: StudySpec) -> storage_pkg.StorageSettings:
    o = spec.storage_options
    return storage_pkg.StorageSettings(
        heartbeat_interval=o.heartbeat_interval, grace_period=o.grace_period, max_retry=o.max_retry
    )


def open_storage(url: str, spec: StudySpec | None = None) -> Any:
    return storage_pkg.get_storage(url, storage_settings(spec) if spec else None)


def create_or_load(spec: StudySpec, study_text: str, url: str) -> tuple[optuna.Study, bool]:
    """Create the study (and enqueue its baseline trials) or load it, checking that the stored
    search space matches the file's. Returns ``(study, created)``.

    Runs under the study's ``create`` lock (:func:`losstune.storage.study_lock`): of several
    runs started together, one creates the study with all its attributes while the others wait,
    then load it and check their space against the stored one.
    """
    with storage_pkg.study_lock(url, spec.name, "create"):
        return _create_or_load(spec, study_text, url)


def _create_or_load(spec: StudySpec, study_text: str, url: str) -> tuple[optuna.Study, bool]:
    from losstune.studies.optuna_parts import make_pruner, make_sampler

    space = spec.compile_space()
    storage = open_storage(url, spec)
    sampler = make_sampler(spec.sampler.name, spec.sampler.args, spec.seed,
                           multi=spec.is_multi_objective)
    pruner = make_pruner(spec.pruner.name, spec.pruner.args)
    created = spec.name not in optuna.get_all_study_names(storage)
    if not created:
        study = optuna.load_study(study_name=spec.name, storage=storage, sampler=sampler,
                                  pruner=pruner)
        check_same_space(study, spec, space)
        logger.info("resume: loaded study %r (%d trial(s) stored); space fingerprint %s "
                    "matches", spec.name, len(study.get_trials(deepcopy=False)),
                    space.fingerprint())
        return study, False
    logger.info("creating study %r (space fingerprint %s)", spec.name, space.fingerprint())
    study = optuna.create_study(
        study_name=spec.name,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        directions=spec.directions,
        load_if_exists=True,
    )
    with storage_pkg.quiet_experimental():
        study.set_metric_names(spec.metric_names)
    # the fingerprint first: a study without one is accepted by any space (old studies)
    study.set_user_attr("space_fingerprint", space.fingerprint())
    study.set_user_attr("trial_template", comparable_template(spec))
    study.set_user_attr("study_file", scrub_text(study_text, url, spec.storage))
    study.set_user_attr("space", space.describe())
    study.set_user_attr("losstune_version", losstune_version())
    study.set_user_attr("n_trials", spec.n_trials)
    study.set_user_attr("description", scrub_text(spec.description, url, spec.storage))
    study.set_user_attr("dataset", spec.data.name)
    study.set_user_attr("multi_objective", spec.is_multi_objective)
    commit = git_commit()
    if commit:
        study.set_user_attr("git_commit", commit)
    baselines = baseline_trials(spec, space)
    logger.info("study %r: enqueued %d baseline trial(s) and %d study-file trial(s)",
                spec.name, len(baselines), len(spec.enqueue))
    for params in baselines:
        study.enqueue_trial(params, user_attrs={attrs_schema.BASELINE: True}, skip_if_exists=True)
    for params in spec.enqueue:
        study.enqueue_trial(params, user_attrs={attrs_schema.ENQUEUED: True})  # each entry runs
    _set_note(study, spec, url)
    return study, True


#: Characters of the study description shown in the dashboard note.
NOTE_DESCRIPTION_CHARS = 2000


def _set_note(study: optuna.Study, spec: StudySpec, url: str) -> None:
    """A Markdown note for optuna-dashboard's study page (best effort)."""
    from losstune.objectives.errors import short_text

    # the note is a summary: a long description stays in full in the `description` attribute
    # (optuna-dashboard stores a note in 2 KB pieces, one database write each)
    lines = [f"# {spec.name}", "", short_text(spec.description or "", NOTE_DESCRIPTION_CHARS),
             "",
             f"* dataset: `{spec.data.name}`; encoder: `{spec.encoder.name}`; head: "
             f"`{spec.model.head}`",
             f"* losses: {', '.join(spec.loss.choices)}"
             + (f"; auxiliary: {', '.join(spec.loss.auxiliary)}" if spec.loss.auxiliary else ""),
             f"* objective: validation {', '.join(spec.metric_names)} "
             "(test metrics are user attributes, never used for selection)",
             f"* budget: {spec.n_trials} finished trials; created by losstune "
             f"{losstune_version()}"]
    save_dashboard_note(study, "\n".join(lines), url, spec.storage)


#: optuna-dashboard's note format: the version under ``dashboard:note_ver`` and the Markdown in
#: chunks of at most 2045 characters under ``dashboard:note_str:<i>`` (study system attributes).
#: Written here directly, so that creating a study does not import optuna-dashboard (seconds of
#: start-up); tests read the notes back with optuna-dashboard's own ``get_note``.
NOTE_VERSION_KEY = "dashboard:note_ver"
NOTE_CHUNK_PREFIX = "dashboard:note_str:"
NOTE_CHUNK = 2045


def save_dashboard_note(study: optuna.Study, markdown: str, url: str,
                        *extra_urls: str | None) -> None:
    """Save ``markdown`` (passwords of ``url`` and ``extra_urls`` removed) as the study's
    optuna-dashboard note; best effort: a note never breaks a run."""
    try:
        body = scrub_text(markdown, url, *extra_urls)
        storage, study_id = study._storage, study._study_id
        attrs = storage.get_study_system_attrs(study_id)
        storage.set_study_system_attr(study_id, NOTE_VERSION_KEY,
                                      int(attrs.get(NOTE_VERSION_KEY, 0)) + 1)
        chunks = [body[i:i + NOTE_CHUNK] for i in range(0, len(body), NOTE_CHUNK)]
        for i, chunk in enumerate(chunks):
            storage.set_study_system_attr(study_id, f"{NOTE_CHUNK_PREFIX}{i}", chunk)
        old = sum(k.startswith(NOTE_CHUNK_PREFIX) for k in attrs)
        for i in range(len(chunks), old):  # a shorter note: blank the old tail
            storage.set_study_system_attr(study_id, f"{NOTE_CHUNK_PREFIX}{i}", "")
    except Exception:  # noqa: BLE001 - a note must never break a run
        logger.debug("could not save the dashboard note", exc_info=True)


def baseline_trials(spec: StudySpec, space: Any) -> list[dict[str, Any]]:
    if spec.loss.baseline is False:
        return []
    names = spec.loss.choices[:1] if spec.loss.baseline is True else list(spec.loss.baseline)
    bad = [n for n in names if n not in spec.loss.choices]
    if bad:
        raise ValueError(f"loss.baseline: {bad} are not in loss.choices {spec.loss.choices}")
    out = []
    for name in names:
        try:
            out.append(space.baseline(name))
        except ValueError:
            continue  # loss.name restricted by the space: that baseline cannot run
    return out


#: Fixed training settings that do not change what a trial's value means: left out of the
#: resume check (a study may be resumed on another device, with more threads, other seeds or
#: without a progress display).
NEUTRAL_TRAIN_SETTINGS = frozenset({"seed", "device", "threads", "progress"})


def comparable_template(spec: StudySpec) -> dict[str, Any]:
    """What makes trial values of a study comparable besides the search space: data, encoder,
    head settings, evaluation (metric, prediction rule) and every fixed training setting that
    changes results (optimizer, patience, grad_clip, ...). Training settings that do not change
    what a value means (:data:`NEUTRAL_TRAIN_SETTINGS`) are left out."""
    template = spec.template()
    out = {k: template[k] for k in ("data", "encoder", "model", "eval")}
    out["train"] = {k: v for k, v in template["train"].items()
                    if k not in NEUTRAL_TRAIN_SETTINGS}
    return json.loads(json.dumps(out, sort_keys=True, default=str))


def _comparable_part(stored: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` restricted to what a stored template records: a template written by an older
    losstune (without ``train``, or without a newer training setting) compares only the keys
    it has, so its study still resumes."""
    out = {k: new.get(k) for k in stored}
    if isinstance(stored.get("train"), dict) and isinstance(new.get("train"), dict):
        out["train"] = {k: new["train"].get(k) for k in stored["train"]}
    return out


def check_same_space(study: optuna.Study, spec: StudySpec, space: Any) -> None:
    from losstune.search_spaces import diff_spaces

    stored = study.user_attrs.get("space_fingerprint")
    if stored is None or stored == space.fingerprint():
        directions = [d.name.lower() for d in study.directions]
        if directions != spec.directions:
            raise StudyMismatchError(
                f"study {spec.name!r} stores directions {directions} but the study file asks "
                f"for {spec.directions}; use a new study name (e.g. {_next_name(spec.name)})"
            )
        if study.metric_names and list(study.metric_names) != spec.metric_names:
            raise StudyMismatchError(
                f"study {spec.name!r} stores values of {study.metric_names} but the study file "
                f"asks for {spec.metric_names}; values of different metrics cannot be compared. "
                f"Start a new study: set `name: {_next_name(spec.name)}`."
            )
        old = study.user_attrs.get("trial_template")
        new = comparable_template(spec)
        if isinstance(old, dict):
            new = _comparable_part(old, new)
        if old is not None and old != new:
            changed = _changed_keys(old, new)
            raise StudyMismatchError(
                f"the data, encoder, model, training or evaluation settings of study file "
                f"{spec.name!r} changed "
                f"since the study was created ({', '.join(changed)}); its trials would not be "
                f"comparable. Revert the study file, or start a new study: set "
                f"`name: {_next_name(spec.name)}`."
            )
        return
    from losstune.search_spaces.space import earlier_default_hint

    hint = earlier_default_hint(study.user_attrs.get("space", []), space.describe(), spec.space)
    if hint:  # only a changed losstune default: one line with the fix
        raise StudyMismatchError(f"study {spec.name!r}: {hint}")
    diff = diff_spaces(study.user_attrs.get("space", []), space.describe())
    shown = "\n  ".join(diff) if diff else "(parameter order or conditions changed)"
    raise StudyMismatchError(
        f"the search space of study file {spec.name!r} differs from the stored study's; "
        f"Optuna cannot resume a study whose space changed. Differences:\n  {shown}\n"
        f"Revert the study file, or start a new study: set `name: {_next_name(spec.name)}`."
    )


def _changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += _changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def _next_name(name: str) -> str:
    import re

    m = re.match(r"^(.*)_v(\d+)$", name)
    return f"{m.group(1)}_v{int(m.group(2)) + 1}" if m else f"{name}_v2"


def count_states(study: optuna.Study,
                 trials: list[optuna.trial.FrozenTrial] | None = None) -> dict[TrialState, int]:
    """Trials per state (of ``trials`` when given, else read from the study)."""
    counts = dict.fromkeys(TrialState, 0)
    for t in study.get_trials(deepcopy=False) if trials is None else trials:
        counts[t.state] += 1
    return counts


def counted_failures(study: optuna.Study,
                     trials: list[optuna.trial.FrozenTrial] | None = None) -> int:
    """FAIL trials that count against ``max_failures``: those whose own run failed (an exception
    or a NaN), not trials of dead workers, which are retried (``stale_reason`` set by losstune,
    or referenced as ``failed_trial`` by a retry that Optuna's heartbeat check queued)."""
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    retried = {t.system_attrs.get("failed_trial") for t in trials}
    return sum(
        1 for t in trials
        if t.state == TrialState.FAIL and attrs_schema.STALE_REASON not in t.user_attrs
        and t.number not in retried
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_stale_trials(study: optuna.Study, grace_period: int) -> list[int]:
    """Fail RUNNING trials left by dead runs and queue their retries.

    A RUNNING trial is stale when its worker ran on this host and its process is gone, or when
    it has not been heartbeating (Optuna's own check), or when it has no heartbeat at all and
    started more than ``grace_period`` seconds ago. Ray Tune trials (ask/tell: no heartbeat) are
    owned by their Tune driver (:data:`TUNE_OWNER_ATTR`): stale when that driver ran on this
    host and is gone; never while it lives; by the no-heartbeat rule when it ran elsewhere.
    """
    storage = study._storage
    _fail_heartbeat_stale(study)  # Optuna's own check, with the retry callback
    host = socket.gethostname()
    now = datetime.now()
    failed: list[int] = []
    callback = getattr(storage, "get_heartbeat_stale_trial_callback", lambda: None)()
    heartbeats = _heartbeat_trial_ids(storage, study)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(TrialRecord.from_trial(trial).worker or "")
        owner = tune_owner(trial)
        dead_here = False
        if owner is not None:
            if owner[0] == host:
                if _pid_alive(owner[1]):
                    continue  # a live Tune run on this host still owns it
                dead_here = True
        elif ":" in worker:
            w_host, w_pid = worker.rsplit(":", 1)
            dead_here = w_host == host and w_pid.isdigit() and not _pid_alive(int(w_pid))
        silent = (
            heartbeats is not None
            and trial._trial_id not in heartbeats
            and trial.datetime_start is not None
            and now - trial.datetime_start > timedelta(seconds=grace_period)
        )
        if not (dead_here or silent):
            continue
        try:
            storage.set_trial_user_attr(
                trial._trial_id, attrs_schema.STALE_REASON,
                ("Ray Tune driver died" if owner else "worker process died") if dead_here
                else "no heartbeat",
            )
            if storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                failed.append(trial.number)
                if callback is not None:
                    callback(study, _retry_source(storage.get_trial(trial._trial_id)))
        except optuna.exceptions.UpdateFinishedTrialError:
            pass
    return failed


def _retry_source(trial: optuna.trial.FrozenTrial) -> optuna.trial.FrozenTrial:
    """The failed trial as the retry callback should copy it: without the attributes that
    describe the dead attempt (the callback copies every user attribute to the retry)."""
    trial = copy.deepcopy(trial)
    trial.user_attrs = {k: v for k, v in trial.user_attrs.items()
                        if k not in (attrs_schema.STALE_REASON, TUNE_OWNER_ATTR)}
    return trial


#: User attribute marking a trial asked by a Ray Tune driver: ``"HOST:PID:NUMBER"`` (its name is
#: :data:`losstune.objectives.attributes.TUNE_OWNER`).
TUNE_OWNER_ATTR = attrs_schema.TUNE_OWNER


def tune_owner(trial: optuna.trial.FrozenTrial) -> tuple[str, int] | None:
    """``(host, pid)`` of the Ray Tune driver that owns ``trial``, else None."""
    value = trial.user_attrs.get(TUNE_OWNER_ATTR)
    if not isinstance(value, str) or value.count(":") < 2:
        return None
    rest, number = value.rsplit(":", 1)
    host, pid = rest.rsplit(":", 1)
    if not (pid.isdigit() and number.isdigit()) or int(number) != trial.number:
        return None
    return host, int(pid)


def _heartbeat_trial_ids(storage: Any, study: optuna.Study) -> set[int] | None:
    """IDs of trials that have a heartbeat row (None when the storage has no heartbeats)."""
    backend = getattr(storage, "_backend", storage)  # Optuna wraps RDB storages in a cache
    reader = getattr(backend, "heartbeat_trial_ids", None)
    if reader is None:
        return None
    try:
        return set(reader(study._study_id))
    except Exception:  # noqa: BLE001 - rely on Optuna's own check only
        logger.debug("could not read heartbeats", exc_info=True)
        return None


#: Seconds between two consultations of the study's pruner within one trial: trials whose
#: epochs are shorter ask it at most this often (each question reads the study's running trials
#: from storage); epochs longer than this are all checked.
PRUNE_CHECK_INTERVAL = 1.0


class PacedPruner(optuna.pruners.BasePruner):
    """Asks ``pruner`` about a trial at most once per ``interval`` seconds (the first report
    always), and answers "continue" in between.

    The wrapped pruner decides exactly as before at the steps it is asked; only how often it is
    asked changes, and only for epochs shorter than ``interval``.
    """

    def __init__(self, pruner: optuna.pruners.BasePruner, *,
                 interval: float = PRUNE_CHECK_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.pruner = pruner
        self.interval = interval
        self.clock = clock
        self._last: tuple[int, float] | None = None  # (trial number, when asked)

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        now = self.clock()
        if self._last is not None and self._last[0] == trial.number \
                and now - self._last[1] < self.interval:
            return False
        self._last = (trial.number, now)
        return self.pruner.prune(study, trial)


def paced(pruner: optuna.pruners.BasePruner) -> optuna.pruners.BasePruner:
    """``pruner`` paced by :class:`PacedPruner` (not the no-op pruner: it reads nothing)."""
    if isinstance(pruner, optuna.pruners.NopPruner) or PRUNE_CHECK_INTERVAL <= 0:
        return pruner
    return PacedPruner(pruner)


class StopFlag:
    """Set by Ctrl-C: stop after the current trial."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = ""
        self.aborted = False  # a second Ctrl-C: abort the running trial now

    def set(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()

    def __bool__(self) -> bool:
        return self.event.is_set()


class _Claim:
    """The budget lock, released exactly once: when the claimed trial has started, or on exit."""

    def __init__(self, url: str, study_name: str) -> None:
        self._lock = storage_pkg.budget_lock(url, study_name)
        self._held = False

    def __enter__(self) -> _Claim:
        self._lock.__enter__()
        self._held = True
        return self

    def release(self) -> None:
        if self._held:
            self._held = False
            self._lock.__exit__(None, None, None)

    def __exit__(self, *exc: object) -> None:
        self.release()


def started_trials(study: optuna.Study) -> int:
    """Trials that have run (or run now): queued WAITING trials (baselines) are not counted."""
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING)


def sampler_seed(seed: int, n_existing: int, worker_index: int) -> int:
    """The sampler seed of a worker: the study seed for a new study's first worker, otherwise
    derived from the number of trials already stored, so that a resumed run (or a restarted
    worker) does not replay the random startup trials it drew before."""
    if n_existing == 0:
        return seed + worker_index
    return (seed + 1_000_003 * n_existing + 7_919 * worker_index) % (2**31 - 1)


class FailedTrialLogFilter(logging.Filter):
    """Drops Optuna's ``Trial N failed with ...`` warnings (and their traceback) while Optuna
    logs at WARNING or above: losstune prints one line per failed trial with its stored reason
    instead. With ``-v`` (losstune's loggers, or Optuna's, at INFO or DEBUG) they pass,
    traceback included."""

    PATTERN = re.compile(r"Trial \d+ failed with ")

    def filter(self, record: logging.LogRecord) -> bool:
        if logging.getLogger("optuna").getEffectiveLevel() < logging.WARNING or \
                logging.getLogger("losstune").getEffectiveLevel() < logging.WARNING:
            return True
        return not (isinstance(record.msg, str) and self.PATTERN.match(record.msg))


def quiet_failed_trial_tracebacks() -> None:
    """Install :class:`FailedTrialLogFilter` on Optuna's optimisation logger (once)."""
    target = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, FailedTrialLogFilter) for f in target.filters):
        target.addFilter(FailedTrialLogFilter())


def run_worker(
    spec: StudySpec,
    url: str,
    *,
    n_trials: int,
    worker_index: int = 0,
    stop: StopFlag | None = None,
    deadline: float | None = None,
    on_trial_end: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
    wait_running: bool = False,
) -> dict[str, Any]:
    """One worker's loop: claim a trial under the budget lock, run it, repeat.

    Used by the local launcher in-process and by Ray workers in their own processes.
    ``wait_running`` (several workers): when the budget is claimed but not yet finished, wait
    for the other workers' RUNNING trials instead of leaving, since one of them may still fail
    (or go stale) and need a replacement; heartbeat-stale trials are failed (and retried) here.
    """
    from losstune.objectives.objective import Objective
    from losstune.studies.optuna_parts import make_pruner, make_sampler

    if spec.plugins:
        from losstune.objectives.plugins import import_plugin_modules

        import_plugin_modules(spec.plugins)
    stop = StopFlag() if stop is None else stop
    quiet_failed_trial_tracebacks()
    storage = open_storage(url, spec)
    study = optuna.load_study(study_name=spec.name, storage=storage)
    study.sampler = make_sampler(spec.sampler.name, spec.sampler.args,
                                 sampler_seed(spec.seed, started_trials(study), worker_index),
                                 multi=spec.is_multi_objective)
    study.pruner = paced(make_pruner(spec.pruner.name, spec.pruner.args))
    objective = Objective(spec.compile_space(), spec.template(),
                          multi_objective=spec.is_multi_objective,
                          scrub=lambda text: scrub_text(text, url),
                          abort=lambda: stop.aborted,
                          set_attrs=storage_pkg.set_user_attrs)
    return worker_loop(study, url, objective, n_trials=n_trials,
                       max_failures=spec.max_failures, stop=stop, deadline=deadline,
                       on_trial_end=on_trial_end, wait_running=wait_running)


def worker_loop(
    study: optuna.Study,
    url: str,
    objective: Callable[[optuna.Trial], Any],
    *,
    n_trials: int,
    max_failures: int,
    stop: StopFlag | None = None,
    deadline: float | None = None,
    on_trial_end: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
    wait_running: bool = False,
) -> dict[str, Any]:
    """The budget loop of :func:`run_worker` for any objective: claim a trial under the study's
    budget lock while ``finished + running < n_trials``, run it, repeat."""
    stop = StopFlag() if stop is None else stop
    started = 0
    reason = "budget reached"
    failures_before = counted_failures(study)  # max_failures counts this run's failures
    while True:
        if stop:
            reason = stop.reason or "stopped"
            break
        if deadline is not None and time.time() >= deadline:
            reason = "timeout reached"
            break
        with _Claim(url, study.study_name) as claim:
            trials = study.get_trials(deepcopy=False)  # one read for both checks
            if counted_failures(study, trials) - failures_before >= max_failures:
                reason = f"max_failures ({max_failures}) failed trials reached"
                break
            counts = count_states(study, trials)
            claimed = (counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
                       + counts[TrialState.RUNNING])
            if claimed >= n_trials:
                if claimed - counts[TrialState.RUNNING] < n_trials and not wait_running:
                    reason = (f"budget claimed: {counts[TrialState.RUNNING]} trial(s) are still "
                              "running elsewhere (run again later to top the study up if they "
                              "fail)")
                    break
                if not wait_running or claimed - counts[TrialState.RUNNING] >= n_trials:
                    break
                claim.release()
                _fail_heartbeat_stale(study)
                time.sleep(1.0)
                continue

            def wrapped(trial: optuna.Trial, claim: _Claim = claim) -> Any:
                claim.release()  # the trial exists (RUNNING) now: others may claim the next one
                return objective(trial)

            study.optimize(wrapped, n_trials=1, catch=(Exception,),
                           callbacks=[on_trial_end] if on_trial_end else [],
                           gc_after_trial=False)
            started += 1
    return {"started": started, "reason": reason, "pid": os.getpid()}


def _fail_heartbeat_stale(study: optuna.Study) -> None:
    """Optuna's own check: fail (and retry) RUNNING trials whose heartbeat is older than the
    grace period. Safe while other workers run: it never touches a live trial."""
    with storage_pkg.quiet_experimental():
        optuna.storages.fail_stale_trials(study)


def fail_interrupted_trials(study: optuna.Study) -> list[int]:
    """After a second Ctrl-C: every trial this process was running is FAIL with a
    ``fail_reason`` (the objective records it when the interrupt reaches it; this covers an
    interrupt that arrived between Optuna's steps and left the trial RUNNING or without a
    reason). Returns the trial numbers."""
    from losstune.objectives.objective import INTERRUPTED_REASON

    me = f"{socket.gethostname()}:{os.getpid()}"
    storage = study._storage
    done = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.FAIL)):
        if trial.user_attrs.get("worker") != me or "fail_reason" in trial.user_attrs:
            continue
        try:
            storage.set_trial_user_attr(trial._trial_id, "fail_reason", INTERRUPTED_REASON)
            if trial.state == TrialState.RUNNING:
                storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        done.append(trial.number)
    return done


def install_sigint(stop: StopFlag) -> Callable[[], None]:
    """First Ctrl-C: finish the current trial, then stop. Second (and any later one, should
    Python drop the interrupt, as it does inside a garbage-collector callback): interrupt now.
    The handler stays until the run restores the previous one, which may be "ignore"."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if stop:
            stop.aborted = True  # the objective stops the trial at its next epoch, should
            raise KeyboardInterrupt  # Python drop this interrupt
        stop.set("interrupted (Ctrl-C): stopped after the current trial")
        print("\nCtrl-C: finishing the current trial, then stopping "
              "(press Ctrl-C again to abort it).", flush=True)

    signal.signal(signal.SIGINT, handler)
    return lambda: signal.signal(signal.SIGINT, previous)
