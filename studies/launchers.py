"""Launchers: how a study's workers are started. All of them run :func:`run_worker` loops that
share one RDB study and one budget."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar

import optuna

from studies.runner import StopFlag, run_worker
from studies.spec import StudySpec


class Launcher(abc.ABC):
    """Starts workers for a study and waits for them."""

    name: ClassVar[str]

    @abc.abstractmethod
    def launch(
        self,
        spec: StudySpec,
        url: str,
        *,
        n_trials: int,
        workers: int,
        stop: StopFlag,
        deadline: float | None,
        on_trial_end: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Run the study to its budget; returns one summary dict per worker."""


class LocalLauncher(Launcher):
    """One worker in this process (the default): pruning, heartbeat and Ctrl-C all apply."""

    name = "local"

    def launch(
        self,
        spec: StudySpec,
        url: str,
        *,
        n_trials: int,
        workers: int,
        stop: StopFlag,
        deadline: float | None,
        on_trial_end: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
    ) -> list[dict[str, Any]]:
        if workers != 1:
            raise ValueError(
                f"the local launcher runs one worker, but --workers {workers} was given; "
                "use --launcher ray for several workers"
            )
        return [run_worker(spec, url, n_trials=n_trials, stop=stop, deadline=deadline,
                           on_trial_end=on_trial_end)]


LAUNCHERS: dict[str, Callable[[], Launcher]] = {"local": LocalLauncher}


def get_launcher(name: str) -> Launcher:
    if name not in LAUNCHERS:
        raise ValueError(f"unknown launcher {name!r}; expected one of {sorted(LAUNCHERS)}")
    return LAUNCHERS[name]()
