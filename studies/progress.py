"""Rich progress displays: a study's (finished / budget, best value so far, ETA), the bars of
``train``, ``confirm`` and ``report`` (:func:`task_progress`), and a row per feature encoding
(:func:`encoding_rows`, hooked into :mod:`losstune.objectives.features`).

The study display reads the study from storage (every ``interval`` seconds and after each local
trial), so it shows the trials of every worker, local or on Ray. Every display is off when the
output is not a terminal or with ``--no-progress``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from losstune.objectives.attributes import TrialRecord


class _Field(ProgressColumn):
    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def render(self, task: Task) -> Text:
        return Text(str(task.fields.get(self.key, "")))


def make_console() -> Console:
    """A console for humans; logs and captured output get long lines instead of 80 columns."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=160, soft_wrap=True)
    return console


def task_progress(console: Console, *, enabled: bool = True) -> Progress:
    """A bar with a count and an ETA for one long command (``train``, ``confirm``,
    ``report``); use it as a context manager. Off when ``console`` is not a terminal or
    ``enabled`` is false (the command prints plain lines instead)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        _Field("count"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=not (enabled and console.is_terminal),
    )


@contextlib.contextmanager
def encoding_rows(progress: Progress) -> Iterator[None]:
    """While inside: each feature encoding of this process shows as a row of ``progress``
    (texts encoded of the total, ETA), removed when it is done. The display's columns must
    include a ``count`` field (:func:`task_progress` and :class:`StudyProgress` do)."""
    from losstune.objectives.features import set_encoding_progress

    @contextlib.contextmanager
    def row(description: str, total: int) -> Iterator[Callable[[int], None]]:
        task = progress.add_task(description, total=total, count=f"0/{total} texts",
                                 best="", states="")
        done = 0

        def advance(rows: int) -> None:
            nonlocal done
            done += rows
            progress.update(task, advance=rows, count=f"{done}/{total} texts")

        try:
            yield advance
        finally:
            progress.remove_task(task)

    previous = set_encoding_progress(row)
    try:
        yield
    finally:
        set_encoding_progress(previous)


def best_text(study: optuna.Study, metric_names: list[str]) -> str:
    if len(study.directions) > 1:
        try:
            return f"Pareto front: {len(study.best_trials)} trial(s)"
        except ValueError:
            return "Pareto front: -"
    try:
        best = study.best_trial
    except ValueError:
        return f"best {metric_names[0]} -"
    return f"best {metric_names[0]} {best.value:.4f} (#{best.number})"


def count_text(finished: int, n_trials: int, running: int) -> str:
    """``3/20 trials (+1 running)``: finished trials of the budget, and those running now."""
    return f"{finished}/{n_trials} trials" + (f" (+{running} running)" if running else "")


def running_share(trial: optuna.trial.FrozenTrial) -> float:
    """How far a RUNNING trial is, in [0, 0.95]: its reported epochs over ``train.epochs``
    (0 when it reports nothing, e.g. multi-objective trials)."""
    epochs = trial.params.get("train.epochs")
    if not isinstance(epochs, int) or epochs < 1:
        config = trial.user_attrs.get("config")
        train = config.get("train") if isinstance(config, dict) else None
        epochs = train.get("epochs") if isinstance(train, dict) else None
    if not isinstance(epochs, int) or epochs < 1:
        return 0.0
    return min(len(trial.intermediate_values) / epochs, 0.95)


class StudyProgress:
    """``with StudyProgress(...) as p: ...; p.refresh()``."""

    def __init__(
        self,
        study: optuna.Study,
        *,
        n_trials: int,
        metric_names: list[str],
        console: Console | None = None,
        interval: float = 2.0,
        enabled: bool = True,
    ) -> None:
        self.study = study
        self.n_trials = n_trials
        self.metric_names = metric_names
        self.console = console or Console(stderr=False)
        self.interval = interval
        self.live = enabled and self.console.is_terminal
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            _Field("count"),
            _Field("best"),
            _Field("states"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.live,
        )
        self._task: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._seen: set[int] = set()
        self._running_share = 0.0

    def __enter__(self) -> StudyProgress:
        finished, running, pruned, failed = self._counts()
        self._seen = {t.number for t in self.study.get_trials(deepcopy=False)
                      if t.state.is_finished()}
        self._task = self._progress.add_task(
            self.study.study_name, total=self.n_trials, completed=min(finished, self.n_trials),
            best="", states="", count=count_text(finished, self.n_trials, running),
        )
        self._progress.start()
        self._encoding = encoding_rows(self._progress)
        self._encoding.__enter__()
        self.refresh()
        if self.interval > 0:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.refresh()
        self._encoding.__exit__(None, None, None)
        self._progress.stop()

    def _counts(self) -> tuple[int, int, int, int]:
        counts = dict.fromkeys(TrialState, 0)
        self._running_share = 0.0
        for t in self.study.get_trials(deepcopy=False):
            counts[t.state] += 1
            if t.state == TrialState.RUNNING:
                self._running_share += running_share(t)
        finished = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
        return finished, counts[TrialState.RUNNING], counts[TrialState.PRUNED], counts[
            TrialState.FAIL]

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - a display must never kill a run
                pass

    def refresh(self) -> None:
        with self._lock:
            finished, running, pruned, failed = self._counts()
            best = best_text(self.study, self.metric_names)
            states = f"running {running} · pruned {pruned} · failed {failed}"
            # the running trials' epochs move the bar (and the ETA) during a long first trial
            done = min(finished + self._running_share, self.n_trials)
            self._progress.update(self._task, completed=done, best=best, states=states,
                                  count=count_text(finished, self.n_trials, running))
            self._print_new_trials(best, failed_only=self.live)

    def _print_new_trials(self, best: str, *, failed_only: bool = False) -> None:
        """One line per newly finished trial (``failed_only``: per failed trial, above the live
        bar: Optuna's own warning with the traceback is shown only with ``-v``)."""
        for t in self.study.get_trials(deepcopy=False):
            if not t.state.is_finished() or t.number in self._seen:
                continue
            if failed_only and t.state != TrialState.FAIL:
                self._seen.add(t.number)
                continue
            self._seen.add(t.number)
            record = TrialRecord.from_trial(t)
            if t.state == TrialState.COMPLETE and record.values:
                value = ", ".join(f"{v:.4f}" for v in record.values)
                what = f"complete, {'/'.join(self.metric_names)} {value}"
            elif t.state == TrialState.FAIL:
                reason = (record.fail_reason or "no reason recorded").strip().splitlines()
                what = f"FAILED: {reason[0] if reason else ''}"
            else:
                what = record.state.lower()
            self.console.print(f"trial {t.number} [{record.loss_label}] {what}  ({best})",
                               markup=False, highlight=False)
