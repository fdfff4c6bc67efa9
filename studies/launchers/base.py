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
        threads: torch threads per trial from ``--threads`` (None: the study file's
            ``train.threads``, else ``TrialConfig.default_threads``: one for a head that gains
            nothing from threads, the usable cores shared by the workers running at once for
            one that does).
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
    threads: int | None = None


@dataclass
class ThreadPlan:
    """How many torch threads each trial of a run uses, and why.

    Attributes:
        threads: torch threads per trial (per worker).
        source: where the count comes from (``--threads``, ``train.threads`` or the default).
        concurrent: workers training at once.
        cores: the cores they share.
    """

    threads: int
    source: str
    concurrent: int
    cores: int

    def warning(self) -> str | None:
        """One line when the run asks for more threads than there are cores, else None."""
        busy = self.threads * self.concurrent
        if busy <= self.cores:
            return None
        fit = max(1, self.cores // max(1, self.concurrent))
        what = (f"{self.threads} torch threads" if self.concurrent == 1 else
                f"{self.concurrent} workers x {self.threads} torch thread(s) = {busy} threads")
        return (f"warning: {what} on {self.cores} core(s) ({self.source}): the threads wait "
                f"for each other and training slows down several times; use --threads {fit}"
                + (" or leave train.threads unset (the default fits the cores)"
                   if self.source == "train.threads" else ""))


def plan_threads(spec: StudySpec, override: int | None, *, concurrent: int, cores: int,
                 default: int | None = None) -> ThreadPlan:
    """Threads per trial: ``--threads`` (``override``), else ``train.threads``, else ``default``
    (None: the cores shared by the ``concurrent`` workers); by default one thread for a head
    that gains nothing from more (:func:`~losstune.objectives.compat.threads_pay`)."""
    from losstune.objectives.compat import threads_pay
    from losstune.objectives.config import default_threads

    if override is not None:
        return ThreadPlan(override, "--threads", concurrent, cores)
    if spec.train.threads is not None:
        return ThreadPlan(spec.train.threads, "train.threads", concurrent, cores)
    threads = default if default is not None else default_threads(concurrent, cores)
    if threads > 1 and not threads_pay(spec.model.head, spec.encoder.fine_tune):
        return ThreadPlan(1, f"default: one thread for head {spec.model.head!r}", concurrent,
                          cores)
    return ThreadPlan(threads, "default: cores / workers", concurrent, cores)


def spec_with_threads(spec: StudySpec, threads: int) -> StudySpec:
    """``spec`` whose trials train with ``threads`` torch threads (the trial configs record the
    count, so exports replay with it)."""
    return spec.model_copy(update={"train": spec.train.model_copy(update={"threads": threads})})


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
