"""A rich progress display of a study: finished / budget, best value so far, ETA.

It reads the study from storage (every ``interval`` seconds and after each local trial), so it
shows the trials of every worker, local or on Ray.
"""

from __future__ import annotations

import threading
from typing import Any

import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
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
            MofNCompleteColumn(),
            TextColumn("trials"),
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

    def __enter__(self) -> StudyProgress:
        finished, running, pruned, failed = self._counts()
        self._seen = {t.number for t in self.study.get_trials(deepcopy=False)
                      if t.state.is_finished()}
        self._task = self._progress.add_task(
            self.study.study_name, total=self.n_trials, completed=min(finished, self.n_trials),
            best="", states="",
        )
        self._progress.start()
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
        self._progress.stop()

    def _counts(self) -> tuple[int, int, int, int]:
        counts = dict.fromkeys(TrialState, 0)
        for t in self.study.get_trials(deepcopy=False):
            counts[t.state] += 1
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
            self._progress.update(self._task, completed=min(finished, self.n_trials), best=best,
                                  states=states)
            if not self.live:
                self._print_new_trials(best)

    def _print_new_trials(self, best: str) -> None:
        for t in self.study.get_trials(deepcopy=False):
            if not t.state.is_finished() or t.number in self._seen:
                continue
            self._seen.add(t.number)
            record = TrialRecord.from_trial(t)
            if t.state == TrialState.COMPLETE and record.values:
                value = ", ".join(f"{v:.4f}" for v in record.values)
                what = f"complete, {'/'.join(self.metric_names)} {value}"
            elif t.state == TrialState.FAIL:
                what = f"FAILED: {record.fail_reason or ''}"
            else:
                what = record.state.lower()
            self.console.print(f"trial {t.number} [{record.loss_label}] {what}  ({best})",
                               markup=False, highlight=False)
