"""Run a suite: for each (arm, dataset) search, confirm and choose a configuration, then train the
chosen configuration of every arm on the same seeds x holdouts, so that arms are paired.

Everything lands in one storage and everything is resumable: the searches are ordinary studies
``<suite>.<arm>.<dataset>`` (run by :func:`~losstune.studies.session.run_study`), confirmations
are those of :func:`losstune.studies.confirm.confirm_study` (reused when already stored with the
same top / seeds), and each evaluation run is a COMPLETE trial of the study ``<suite>--runs``
(skipped when a run of the same arm, dataset, holdout, seed and configuration is stored).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

import losstune.storage as storage_pkg
from losstune.objectives.errors import LosstuneError
from losstune.studies.suite.spec import (
    Suite,
    SuiteFileError,
    Unit,
    choice_key,
    config_digest,
    eval_seeds,
    load_suite,
)


class SuiteError(LosstuneError, RuntimeError):
    """A suite cannot go on (a study stopped on failures, nothing to choose from, ...)."""


class SuiteInterrupted(Exception):  # noqa: N818 - a stop, not an error
    """Ctrl-C: the suite stopped after the current run; everything stored so far is kept."""


@dataclass
class NotRun:
    arm: str
    dataset: str
    reason: str
    command: str


@dataclass
class SuiteResult:
    """What ``run_suite`` did and wrote."""

    suite: Suite
    storage: str
    output: Path
    files: list[Path]
    tables: Any  # losstune.studies.suite.outputs.SuiteTables
    not_run: list[NotRun]
    seconds: float
    ran_units: int
    notes: list[str] = field(default_factory=list)


def run_config(config: Any, split: int, seed: int) -> Any:
    """The chosen ``config`` trained with ``seed`` on holdout ``split`` (0: the dataset's own
    split, options untouched; r: ``split_seed`` = the dataset's split seed + r)."""
    from losstune.objectives.data.registry import holdout_options

    out = config.with_seed(seed)
    if split:
        data = out.data.model_copy(update={"options": holdout_options(
            out.data.name, out.data.options, split)})
        out = out.model_copy(update={"data": data})
    if out.train.threads is None:  # what this process uses, recorded so that replays match
        import torch

        # the process's threads, or one for a head that gains nothing from more
        out = out.with_threads(min(torch.get_num_threads(), out.default_threads()))
    return out


def suite_command(suite: Suite, *, storage: str | None, only: Sequence[str]) -> str:
    """The ``losstune suite`` command line that runs ``only`` these arms (all when empty)."""
    parts = ["losstune", "suite", str(suite.path)]
    if suite.quick:
        parts.append("--quick")
    if storage:
        parts += ["--storage", storage_pkg.mask_url(storage)]
    for arm in only:
        parts += ["--only", arm]
    return " ".join(parts)


# ---------------------------------------------------------------------- progress
class SuiteProgress:
    """One rich bar over every work unit (search trials, confirmation runs, evaluation runs)
    with the current arm / dataset / phase and an ETA; with ``enabled=False`` or off a
    terminal, one plain line per phase and per run instead."""

    def __init__(self, console: Any, *, title: str, total: int, completed: int,
                 enabled: bool = True) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = console
        self.live = enabled and console.is_terminal
        self._progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
            MofNCompleteColumn(), TextColumn("units"), TextColumn("{task.fields[phase]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, disable=not self.live,
        )
        self._task = self._progress.add_task(title, total=max(total, 1), completed=completed,
                                             phase="")
        self._lock = threading.Lock()
        self._stop_watch: threading.Event | None = None
        self._watch_thread: threading.Thread | None = None

    def __enter__(self) -> SuiteProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unwatch()
        self._progress.stop()

    @property
    def completed(self) -> int:
        return int(self._progress.tasks[0].completed)

    def phase(self, text: str) -> None:
        with self._lock:
            self._progress.update(self._task, phase=text)
        if not self.live:
            self.console.print(text, markup=False, highlight=False)

    def note(self, text: str) -> None:
        if not self.live:
            self.console.print("  " + text, markup=False, highlight=False)

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self._progress.advance(self._task, n)

    def set_completed(self, value: int) -> None:
        with self._lock:
            self._progress.update(self._task, completed=value)

    def add_total(self, n: int) -> None:
        with self._lock:
            task = self._progress.tasks[0]
            self._progress.update(self._task, total=max(1, (task.total or 0) + n))

    def watch(self, probe: Callable[[], int], base: int, interval: float = 2.0) -> None:
        """Every ``interval`` s set completed = ``base`` + ``probe()`` (a study's trials)."""
        self.unwatch()
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                try:
                    self.set_completed(base + probe())
                except Exception:  # noqa: BLE001 - a display must never kill a run
                    pass

        self._stop_watch = stop
        self._watch_thread = threading.Thread(target=loop, daemon=True)
        self._watch_thread.start()

    def unwatch(self) -> None:
        if self._stop_watch is not None:
            self._stop_watch.set()
            if self._watch_thread is not None:
                self._watch_thread.join(timeout=5)
        self._stop_watch = None
        self._watch_thread = None


# ---------------------------------------------------------------------- storage helpers
def _finished(study: optuna.Study) -> int:
    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED)
               for t in study.get_trials(deepcopy=False))


def _load(storage: Any, name: str) -> optuna.Study | None:
    if name not in optuna.get_all_study_names(storage):
        return None
    return optuna.load_study(study_name=name, storage=storage)


def run_key(attrs: dict[str, Any]) -> tuple[Any, ...]:
    return (attrs.get("arm"), attrs.get("dataset"), attrs.get("split"), attrs.get("seed"),
            attrs.get("config_digest"))


def stored_run_keys(runs: optuna.Study) -> set[tuple[Any, ...]]:
    """Keys of the evaluation runs already stored (complete, or diverged: not retried)."""
    keys = set()
    for t in runs.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL
                                              and t.user_attrs.get("diverged")):
            keys.add(run_key(t.user_attrs))
    return keys


def _confirmation_matches(study: optuna.Study, top: int, seeds: int) -> bool:
    from losstune.studies.confirm import stored_confirmation, top_trials

    chosen = top_trials(study, top)
    stored = stored_confirmation(study)
    return bool(chosen) and all(
        t.number in stored and len(stored[t.number].seeds) == seeds
        and stored[t.number].splits == 1 for t in chosen)


# ---------------------------------------------------------------------- the run
def run_suite(
    path: str | Path,
    *,
    storage: str | None = None,
    quick: bool = False,
    output: str | Path | None = None,
    markdown: str | Path | None = None,
    only: Sequence[str] = (),
    console: Any = None,
    progress: bool = True,
    command: str | None = None,
    workers: int = 1,
) -> SuiteResult:
    """Run (or resume) the suite in ``path`` and write its tables. See docs/suites.md.

    Args:
        path: the suite file.
        storage: storage URL (wins over ``$LOSSTUNE_STORAGE`` and the suite's ``storage:``).
        quick: apply the suite's ``quick:`` overrides, with ``-quick`` study names.
        output: folder for RESULTS.md, results.csv, results.tex, forest.png (default
            ``suite-results/<name>``).
        markdown: also write RESULTS.md here (links made relative to it).
        only: run only these arms (the tables still show every arm stored so far).
        console: a rich console (default: a new one).
        progress: show the progress bar on a terminal (False, or off a terminal: one plain
            line per phase and run).
        command: the command line to record in RESULTS.md.
        workers: worker processes; each claims whole (arm, dataset) units, and every unit
            runs in one process, so results do not depend on the number of workers. Torch
            threads per worker: usable cores // workers (at least 1; one for a head that
            gains nothing from more).

    Raises:
        SuiteFileError: the suite file or an argument is invalid (nothing ran, nothing written).
        SuiteInterrupted: Ctrl-C; run again to resume.
    """
    from losstune.studies.progress import make_console
    from losstune.studies.runner import StopFlag, install_sigint
    from losstune.studies.suite.outputs import build_tables, write_outputs

    started = time.time()
    if workers < 1:
        raise SuiteFileError(f"--workers must be at least 1, not {workers}")
    suite = load_suite(path, quick=quick)
    bad = [a for a in only if a not in suite.spec.arms]
    if bad:
        from losstune.studies.suite.spec import _unknown_text

        raise SuiteFileError(_unknown_text("--only", "arm", bad[0], list(suite.spec.arms)))
    out_dir = Path(output) if output is not None else Path("suite-results") / suite.name
    if out_dir.exists() and not out_dir.is_dir():
        raise SuiteFileError(f"output {str(out_dir)!r} exists and is not a folder")
    md_path = Path(markdown) if markdown is not None else None
    if md_path is not None:
        if md_path.is_dir():
            raise SuiteFileError(f"--markdown {str(md_path)!r} is a folder; give a file name "
                                 "such as RESULTS.md")
        parent = md_path.parent if str(md_path.parent) else Path(".")
        if not parent.is_dir():
            raise SuiteFileError(f"--markdown: folder {str(parent)!r} does not exist")
    url = storage_pkg.resolve_storage_url(storage, suite.spec.storage)
    console = console or make_console()

    import torch

    cuda = torch.cuda.is_available()
    selected = [u for u in suite.units if not only or u.arm in only]
    not_run = [NotRun(u.arm, u.dataset, "fine-tunes the encoder (encoder.fine_tune: true); "
                      "runs only where a CUDA device is present",
                      suite_command(suite, storage=storage, only=[u.arm]))
               for u in suite.units if u.fine_tune and not cuda]
    skipped = {(n.arm, n.dataset) for n in not_run}
    todo = [u for u in selected if u.key not in skipped]

    st = storage_pkg.get_storage(url)
    _check_stored_studies(todo, st)  # a changed arm fails here, before anything is written
    console.print(f"storage: {storage_pkg.mask_url(url)}", highlight=False)
    runs = optuna.create_study(study_name=suite.runs_study, storage=st, direction="maximize",
                               load_if_exists=True)
    _describe_runs_study(runs, suite, url)
    done_keys = stored_run_keys(runs)
    total, completed = _plan(suite, todo, st, runs, done_keys)
    stop = StopFlag()
    restore = install_sigint(stop)
    try:
        with SuiteProgress(console, title=suite.name, total=total, completed=completed,
                           enabled=progress) as bar:
            if workers == 1:
                for unit in todo:
                    _run_unit(unit, suite=suite, url=url, storage=st, runs=runs,
                              done_keys=done_keys, bar=bar, stop=stop)
            else:
                _run_workers(suite, todo, url=url, only=only, workers=workers, runs=runs,
                             storage=st, bar=bar, stop=stop)
    finally:
        restore()
        _record_invocation(runs, started=started, seconds=time.time() - started,
                           workers=workers, only=only)
    seconds = time.time() - started
    runs = optuna.load_study(study_name=suite.runs_study, storage=st)  # what workers stored
    tables = build_tables(suite, runs, not_run=not_run)
    files = write_outputs(suite, tables, out_dir, markdown=md_path, storage=url,
                          command=command or suite_command(suite, storage=storage, only=only),
                          seconds=seconds, invocations=runs.user_attrs.get(INVOCATIONS_KEY))
    return SuiteResult(suite=suite, storage=storage_pkg.mask_url(url), output=out_dir,
                       files=files, tables=tables, not_run=not_run, seconds=seconds,
                       ran_units=len(todo), notes=list(suite.notes))


# ---------------------------------------------------------------------- worker processes
#: Study user attribute of ``<suite>--runs``: the invocations of the suite command on this
#: storage (start, seconds, workers, --only), so RESULTS.md can state the wall time of a suite
#: that was resumed or run in parts.
INVOCATIONS_KEY = "invocations"
#: ``claim.<arm>.<dataset>`` on ``<suite>--runs``: the invocation whose worker took the unit.
CLAIM_PREFIX = "claim."


def _record_invocation(runs: optuna.Study, *, started: float, seconds: float, workers: int,
                       only: Sequence[str]) -> None:
    import datetime as _dt

    try:
        entries = list(runs._storage.get_study_user_attrs(runs._study_id).get(
            INVOCATIONS_KEY, []))
        entries.append({
            "started": _dt.datetime.fromtimestamp(started, _dt.UTC).isoformat(
                timespec="seconds"),
            "seconds": round(seconds, 1), "workers": workers, "only": list(only),
        })
        runs.set_user_attr(INVOCATIONS_KEY, entries)
    except Exception as exc:  # noqa: BLE001 - bookkeeping must not hide the run's own outcome
        import logging

        logging.getLogger(__name__).warning("could not record this invocation: %s", exc)


def _claim(runs: optuna.Study, url: str, unit: Unit, invocation: str) -> bool:
    """Take ``unit`` for this worker unless another worker of the same invocation has."""
    key = f"{CLAIM_PREFIX}{unit.arm}.{unit.dataset}"
    with storage_pkg.study_lock(url, runs.study_name, "budget"):
        attrs = runs._storage.get_study_user_attrs(runs._study_id)
        if attrs.get(key) == invocation:
            return False
        runs._storage.set_study_user_attr(runs._study_id, key, invocation)
        return True


class _PrefixedWriter:
    """A text stream that prefixes each line (plain output of worker processes)."""

    def __init__(self, stream: Any, prefix: str) -> None:
        self.stream, self.prefix, self.at_start = stream, prefix, True

    def write(self, text: str) -> int:
        out = []
        for piece in text.splitlines(keepends=True):
            if self.at_start:
                out.append(self.prefix)
            out.append(piece)
            self.at_start = piece.endswith("\n")
        self.stream.write("".join(out))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def _worker_main(path: str, url: str, quick: bool, only: list[str], index: int,
                 invocation: str, threads: int, plain: bool, queue: Any,
                 optuna_verbosity: int = optuna.logging.WARNING) -> None:
    """One worker process: claim the next free unit, run it, until none is left."""
    import os
    import sys

    os.setpgrp()  # Ctrl-C reaches the parent only, which forwards it once per press
    parent = os.getppid()

    def orphan_watch() -> None:  # the parent was killed: stop like a killed run would
        while True:
            time.sleep(2.0)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=orphan_watch, daemon=True).start()
    import torch
    from rich.console import Console

    from losstune.studies.runner import StopFlag, install_sigint

    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna_verbosity)  # as the command set it in the parent
    stop = StopFlag()
    install_sigint(stop)
    console = Console(file=_PrefixedWriter(sys.stdout, f"[worker {index}] "), quiet=not plain,
                      width=200, force_terminal=False)
    try:
        suite = load_suite(path, quick=quick)
        cuda = torch.cuda.is_available()
        todo = [u for u in suite.units if (not only or u.arm in only)
                and not (u.fine_tune and not cuda)]
        st = storage_pkg.get_storage(url)
        runs = optuna.load_study(study_name=suite.runs_study, storage=st)
        bar = SuiteProgress(console, title=suite.name, total=1, completed=0, enabled=False)
        for unit in todo:
            if stop:
                raise SuiteInterrupted("stopped between units")
            if not _claim(runs, url, unit, invocation):
                continue
            done_keys = stored_run_keys(runs)
            _run_unit(unit, suite=suite, url=url, storage=st, runs=runs, done_keys=done_keys,
                      bar=bar, stop=stop)
        queue.put(("done", index, ""))
    except (SuiteInterrupted, KeyboardInterrupt) as exc:
        queue.put(("interrupted", index, str(exc)))
    except LosstuneError as exc:
        queue.put(("error", index, str(exc)))
    except BaseException as exc:  # noqa: BLE001 - reported by the parent, with the traceback
        import traceback

        traceback.print_exc()
        queue.put(("error", index, f"{type(exc).__name__}: {exc}"))


def _run_workers(suite: Suite, todo: list[Unit], *, url: str, only: Sequence[str],
                 workers: int, runs: optuna.Study, storage: Any, bar: SuiteProgress,
                 stop: Any) -> None:
    """Run ``todo`` in ``workers`` processes; the bar follows what the storage holds."""
    import multiprocessing as mp
    import os
    import queue as queue_mod
    import signal
    import uuid

    invocation = uuid.uuid4().hex
    from losstune.objectives.config import default_threads

    threads = default_threads(workers)
    bar.phase(f"{workers} worker processes, {threads} torch thread(s) each")
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker_main, name=f"losstune-suite-worker-{i}",
                         args=(str(suite.path), url, suite.quick, list(only), i, invocation,
                               threads, not bar.live, results,
                               optuna.logging.get_verbosity()))
             for i in range(workers)]
    for p in procs:
        p.start()

    def probe() -> int:
        fresh = optuna.load_study(study_name=suite.runs_study, storage=storage)
        return _plan(suite, todo, storage, fresh, stored_run_keys(fresh))[1]

    bar.watch(probe, 0, interval=5.0)
    outcomes: dict[int, tuple[str, str]] = {}
    forwarded = 0
    try:
        while len(outcomes) < workers:
            presses = 2 if getattr(stop, "aborted", False) else 1 if stop else 0
            while forwarded < presses:  # forward each Ctrl-C once to every worker
                for p in procs:
                    if p.is_alive() and p.pid is not None:
                        os.kill(p.pid, signal.SIGINT)
                forwarded += 1
            try:
                kind, index, text = results.get(timeout=1.0)
                outcomes[index] = (kind, text)
            except queue_mod.Empty:
                for i, p in enumerate(procs):
                    if i not in outcomes and not p.is_alive() and p.exitcode is not None:
                        try:  # its last message may still be in the pipe
                            kind, index, text = results.get(timeout=1.0)
                            outcomes[index] = (kind, text)
                        except queue_mod.Empty:
                            outcomes[i] = ("error", f"exited with status {p.exitcode}")
            except KeyboardInterrupt:  # a second Ctrl-C while waiting
                stop.aborted = True
    finally:
        bar.unwatch()
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    errors = [f"worker {i}: {text}" for i, (kind, text) in sorted(outcomes.items())
              if kind == "error"]
    if errors:
        raise SuiteError("; ".join(errors) + " (the other units ran; run again to resume)")
    if any(kind == "interrupted" for kind, _ in outcomes.values()) or stop:
        raise SuiteInterrupted("stopped in the worker processes")
    bar.set_completed(probe())


def _check_stored_studies(todo: list[Unit], storage: Any) -> None:
    """Every arm's study already in storage still matches its (merged) study file."""
    from losstune.studies.runner import check_same_space

    for unit in todo:
        if unit.search:
            study = _load(storage, unit.study.name)
            if study is not None:
                check_same_space(study, unit.study, unit.study.compile_space())


def _describe_runs_study(runs: optuna.Study, suite: Suite, url: str) -> None:
    from losstune.studies.runner import git_commit, losstune_version
    from losstune.studies.secrets import scrub_text

    attrs = runs.user_attrs
    if "suite" not in attrs:
        runs.set_user_attr("suite", suite.name)
        runs.set_user_attr("suite_file", scrub_text(suite.text, url))
        runs.set_user_attr("description", scrub_text(suite.spec.description, url))
        runs.set_user_attr("losstune_version", losstune_version())
        commit = git_commit()
        if commit:
            runs.set_user_attr("git_commit", commit)
        with storage_pkg.quiet_experimental():
            runs.set_metric_names(["val_objective"])
        _runs_note(runs, suite, url)


def _runs_note(runs: optuna.Study, suite: Suite, url: str) -> None:
    """The dashboard note of ``<suite>--runs``: what its trials are (not a search)."""
    from losstune.studies.runner import save_dashboard_note

    save_dashboard_note(runs, "\n".join([
        f"# {runs.study_name}",
        "",
        f"**Evaluation runs of suite `{suite.name}`** (`losstune suite`), not a search: one "
        "trial per (arm, dataset, holdout, seed), with user attributes `arm`, `dataset`, "
        "`split`, `seed` and the test metrics; the value is the validation metric. The "
        "suite's tables (mean ± 95% CI, paired tests, verdicts) are in its RESULTS.md.",
    ]), url)


def _plan(suite: Suite, todo: list[Unit], storage: Any, runs: optuna.Study,
          done_keys: set[tuple[Any, ...]]) -> tuple[int, int]:
    """Work units in all and already done (from what the storage holds)."""
    total = completed = 0
    n_eval = suite.seeds * suite.splits
    for unit in todo:
        digest = None
        if unit.search:
            n = unit.study.n_trials
            total += n
            study = _load(storage, unit.study.name)
            finished = min(_finished(study), n) if study is not None else 0
            completed += finished
            n_confirm = suite.confirm.top * suite.confirm.seeds
            total += n_confirm
            if study is not None and finished >= n and _confirmation_matches(
                    study, suite.confirm.top, suite.confirm.seeds):
                completed += n_confirm
                choice = runs.user_attrs.get(choice_key(unit.arm, unit.dataset))
                digest = choice.get("digest") if isinstance(choice, dict) else None
        else:
            digest = config_digest(unit.fixed)
        total += n_eval
        if digest is not None:
            completed += sum(
                (unit.arm, unit.dataset, r, s, digest) in done_keys
                for r in range(suite.splits) for s in eval_seeds(suite))
    return total, completed


def _run_unit(unit: Unit, *, suite: Suite, url: str, storage: Any, runs: optuna.Study,
              done_keys: set[tuple[Any, ...]], bar: SuiteProgress, stop: Any) -> None:
    where = f"{unit.arm}/{unit.dataset}"
    if unit.search:
        config, choice = _search_and_choose(unit, suite=suite, url=url, storage=storage,
                                            bar=bar, stop=stop)
    else:
        config = unit.fixed
        choice = {"search": False, "source": "paper-default trial of "
                  f"{unit.study.loss.choices[0]!r} in the arm's study" if unit.study is not None
                  else "fixed configuration"}
    digest = config_digest(config)
    choice.update({"digest": digest, "config": config.model_dump(mode="json")})
    key = choice_key(unit.arm, unit.dataset)
    if runs.user_attrs.get(key) != choice:
        runs.set_user_attr(key, choice)
    _evaluate(unit, config, digest, suite=suite, runs=runs, done_keys=done_keys, bar=bar,
              stop=stop, where=where)


def _search_and_choose(unit: Unit, *, suite: Suite, url: str, storage: Any,
                       bar: SuiteProgress, stop: Any) -> tuple[Any, dict[str, Any]]:
    from rich.console import Console

    from losstune.objectives.config import TrialConfig
    from losstune.studies.confirm import confirm_study, stored_confirmation, top_trials
    from losstune.studies.optuna_parts import best_first
    from losstune.studies.session import run_study

    spec = unit.study
    where = f"{unit.arm}/{unit.dataset}"
    existing = _load(storage, spec.name)
    before = min(_finished(existing), spec.n_trials) if existing is not None else 0
    bar.phase(f"{where}: search ({spec.n_trials} trials, study {spec.name})")
    holder: dict[str, optuna.Study] = {}

    def probe() -> int:
        if "study" not in holder:
            found = _load(storage, spec.name)
            if found is None:
                return 0
            holder["study"] = found
        return min(_finished(holder["study"]), spec.n_trials) - before

    base = bar.completed
    bar.watch(probe, base)
    try:
        summary = run_study(spec, study_text=unit.study_text, storage=url, progress=False,
                            console=Console(quiet=True))
    finally:
        bar.unwatch()
    if "interrupted" in summary.stopped_reason:
        raise SuiteInterrupted(f"stopped during the search of {where}")
    if summary.stopped_reason.startswith("max_failures"):
        raise SuiteError(f"{where}: study {spec.name!r} stopped: {summary.stopped_reason}; "
                         f"see `losstune show {spec.name}` for the failure reasons")
    bar.set_completed(base + min(summary.finished, spec.n_trials) - before)
    if stop:
        raise SuiteInterrupted(f"stopped after the search of {where}")

    top, seeds = suite.confirm.top, suite.confirm.seeds
    study = optuna.load_study(study_name=spec.name, storage=storage)
    chosen = top_trials(study, top)
    if not chosen:
        raise SuiteError(f"{where}: study {spec.name!r} has no completed trial to choose from "
                         f"(see `losstune show {spec.name}`)")
    planned = top * seeds
    if _confirmation_matches(study, top, seeds):
        bar.note(f"{where}: confirmation of the top {len(chosen)} trial(s) already stored")
    else:
        bar.add_total(len(chosen) * seeds - planned)
        bar.phase(f"{where}: confirm top {len(chosen)} x {seeds} seeds")

        def on_run(trial: int, seed: int, value: float) -> None:
            bar.advance()
            bar.note(f"{where}: confirm trial {trial} seed {seed}: {value:.4f}")
            if stop:
                raise SuiteInterrupted(f"stopped during the confirmation of {where}")

        confirm_study(spec.name, storage=url, top=top, seeds=seeds, on_run=on_run)
        study = optuna.load_study(study_name=spec.name, storage=storage)
    stored = stored_confirmation(study)
    rows = [stored[t.number] for t in chosen]
    direction = study.directions[0].name.lower()
    best = best_first(rows, lambda r: r.val_stats["mean"], direction)[0]
    trial = next(t for t in chosen if t.number == best.trial)
    config = TrialConfig.model_validate(trial.user_attrs["config"])
    choice = {
        "search": True, "study": spec.name, "trial": trial.number,
        "single_value": float(trial.values[0]), "confirmed_mean": best.val_stats["mean"],
        "confirmed_ci95": best.val_stats["ci95"], "confirmed_n": len(best.val),
        "confirm_top": len(chosen), "confirm_seeds": seeds, "n_trials": spec.n_trials,
        "full_n_trials": unit.full_n_trials, "metric": study.metric_names[0]
        if study.metric_names else "value",
    }
    bar.note(f"{where}: chose trial {trial.number} (confirmed mean "
             f"{best.val_stats['mean']:.4f} ± {best.val_stats['ci95']:.4f})")
    return config, choice


def _evaluate(unit: Unit, config: Any, digest: str, *, suite: Suite, runs: optuna.Study,
              done_keys: set[tuple[Any, ...]], bar: SuiteProgress, stop: Any,
              where: str) -> None:
    from losstune.objectives.training import NonFiniteLossError, run_trial

    pending = [(r, i, s) for r in range(suite.splits) for i, s in enumerate(eval_seeds(suite))
               if (unit.arm, unit.dataset, r, s, digest) not in done_keys]
    if not pending:
        bar.note(f"{where}: all {suite.splits * suite.seeds} evaluation runs already stored")
        return
    bar.phase(f"{where}: evaluate {len(pending)} run(s) ({suite.seeds} seeds x "
              f"{suite.splits} holdouts)")
    for split, index, seed in pending:
        if stop:
            raise SuiteInterrupted(f"stopped during the evaluation of {where}")
        cfg = run_config(config, split, seed)
        attrs: dict[str, Any] = {
            "suite": suite.name, "arm": unit.arm, "dataset": unit.dataset, "split": split,
            "split_seed": cfg.data.options.get("split_seed"), "seed": seed,
            "seed_index": index, "config_digest": digest, "config": cfg.model_dump(mode="json"),
        }
        try:
            result = run_trial(cfg, extra_rules=list(suite.spec.rules))
        except NonFiniteLossError as exc:
            attrs.update({"diverged": True, "fail_reason": str(exc)})
            runs.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, user_attrs=attrs))
            bar.note(f"{where}: holdout {split} seed {seed}: diverged ({exc})")
        else:
            _record_run(runs, attrs, result, cfg)
            bar.note(f"{where}: holdout {split} seed {seed}: test {suite.spec.metric} "
                     f"{_test_value(result, suite.spec.metric):.4f}")
        done_keys.add((unit.arm, unit.dataset, split, seed, digest))
        bar.advance()


def _test_value(result: Any, metric: str) -> float:
    rule, _, name = metric.rpartition(".")
    values = result.test_by_rule.get(rule, {}) if rule else result.test
    return float(values.get(name, math.nan))


def _record_run(runs: optuna.Study, attrs: dict[str, Any], result: Any, cfg: Any) -> None:
    from losstune.objectives.objective import result_attributes

    attrs = {**{k: v for k, v in result_attributes(result).items()
                if not k.startswith("curve.")}, **attrs}
    attrs["best_is_last"] = result.best_epoch == cfg.train.epochs - 1
    runs.add_trial(optuna.trial.create_trial(value=float(result.value), user_attrs=attrs,
                                             state=TrialState.COMPLETE))
