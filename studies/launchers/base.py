"""What every launcher shares: the request it is given, the result of each worker, the
:class:`Launcher` interface and :class:`LauncherError`.

A launcher starts the workers of one study run. Each worker runs
:func:`losstune.studies.runner.run_worker` loops (or, for Ray Tune, trials that Tune schedules)
against the study's RDB storage, under the study's one budget. Nothing here imports Ray.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from losstune.objectives.errors import LosstuneError

if TYPE_CHECKING:
    import optuna

    from losstune.studies.runner import StopFlag
    from losstune.studies.spec import StudySpec

    TrialEndCallback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


class LauncherError(LosstuneError, ValueError):
    """A launcher cannot run this study here; the message says why and what to change."""


@dataclass
class LaunchRequest:
    """One run of a study, as a launcher receives it.

    :func:`losstune.studies.api.run_study` builds one request, hands it to
    :meth:`Launcher.prepare` before the study is created, and fills in ``deadline`` and
    ``on_trial_end`` before :meth:`Launcher.launch` (they depend on when the run starts and on
    its progress display).

    Attributes:
        spec: the validated study file.
        url: the storage URL (passwords included: it is never printed from here).
        n_trials: the budget of finished (COMPLETE + PRUNED) trials.
        workers: how many workers run at once.
        stop: set on Ctrl-C; workers stop after their current trial.
        deadline: ``time.time()`` after which no new trial starts, or None.
        on_trial_end: called in this process after each trial it ran (local launcher only).
        address: the Ray cluster to join (Ray launchers); None starts a local instance.
        echo: where launcher notes for the user go (``run_study``: its console).
    """

    spec: StudySpec
    url: str
    n_trials: int
    workers: int = 1
    stop: StopFlag | None = None
    deadline: float | None = None
    on_trial_end: TrialEndCallback | None = None
    address: str | None = None
    echo: Callable[[str], None] = print


@dataclass
class WorkerResult:
    """What one worker reports when it stops.

    Attributes:
        started: trials this worker started.
        reason: why it stopped (``budget reached``, ``timeout reached``, an error, ...).
        pid: the worker's process id, when known.
        worker: the worker's index (Ray launchers).
        host: the host the worker ran on (Ray launchers).
    """

    started: int
    reason: str
    pid: int | None = None
    worker: int | None = None
    host: str | None = None

    @classmethod
    def from_run(cls, out: Mapping[str, Any], **extra: Any) -> WorkerResult:
        """From the summary :func:`losstune.studies.runner.run_worker` returns."""
        return cls(started=int(out["started"]), reason=str(out["reason"]), pid=out.get("pid"),
                   **extra)


class Launcher(abc.ABC):
    """Starts the workers of a study run and waits for them.

    ``prepare(request)`` runs before the study is created (a launcher error must leave the
    storage untouched); ``launch(request)`` runs the study to its budget; ``close()`` releases
    what ``prepare`` acquired when ``launch`` did not run (``run_study`` always calls it).
    """

    name: ClassVar[str]

    def prepare(self, request: LaunchRequest) -> None:
        """Check that this launcher can run ``request`` here and acquire what it needs."""
        return None

    @abc.abstractmethod
    def launch(self, request: LaunchRequest) -> list[WorkerResult]:
        """Run the study to its budget; one result per worker."""

    def close(self) -> None:
        """Release what :meth:`prepare` acquired and :meth:`launch` did not take over."""
        return None
