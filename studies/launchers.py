"""Launchers: how a study's workers are started. All of them run :func:`run_worker` loops that
share one RDB study and one budget."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar

import optuna

from losstune.objectives.errors import LosstuneError
from losstune.studies.runner import StopFlag, run_worker
from losstune.studies.spec import StudySpec


class LauncherError(LosstuneError, ValueError):
    """A launcher cannot run this study here; the message says why and what to change."""


class Launcher(abc.ABC):
    """Starts workers for a study and waits for them."""

    name: ClassVar[str]

    def prepare(self, spec: StudySpec, url: str, workers: int) -> None:
        """Check that this launcher can run ``spec`` here (and acquire what it needs), before
        the study is created: a launcher error must leave the storage untouched."""
        return None

    def close(self) -> None:
        """Release what :meth:`prepare` acquired when :meth:`launch` did not run."""
        return None

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

    def prepare(self, spec: StudySpec, url: str, workers: int) -> None:
        if workers != 1:
            raise LauncherError(
                f"the local launcher runs one worker, but --workers {workers} was given; "
                "use --launcher ray for several workers"
            )

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
        self.prepare(spec, url, workers)
        return [run_worker(spec, url, n_trials=n_trials, stop=stop, deadline=deadline,
                           on_trial_end=on_trial_end)]


def _require_ray(launcher: str) -> None:
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise LauncherError(f"--launcher {launcher} needs Ray; install the 'ray' extra: "
                            "pip install -e '.[ray]'")


def _shared_url(url: str, launcher: str) -> str:
    """The storage URL as worker processes must see it (checked: it can be shared)."""
    import losstune.storage as storage_pkg
    from losstune.studies.ray_launch import shareable_url

    if storage_pkg.backend_of(url) == "memory" or (
        storage_pkg.backend_of(url) == "sqlite" and storage_pkg.sqlite_path(url) is None
    ):
        raise LauncherError(
            f"an in-memory storage cannot be shared with worker processes; use an SQLite file "
            f"or PostgreSQL with --launcher {launcher}"
        )
    return shareable_url(url)


class RayLauncher(Launcher):
    """N Ray tasks, each running :func:`run_worker` on the shared RDB study (issue 6).

    Resources per worker come from the study file (``ray.num_cpus``, ``ray.num_gpus``:
    fractions share a GPU). Without an address Ray starts locally with ``address="local"``;
    ``--address`` / ``ray.address`` joins a cluster. Ctrl-C: workers stop after their current
    trial; a second Ctrl-C cancels them (their trials are failed and retried on resume).
    """

    name = "ray"
    #: ``(module, function)`` of the body: ``function(spec, url, *, n_trials, workers, stop,
    #: deadline, address, echo)``, imported only when launched (Ray is an optional extra).
    body = ("losstune.studies.ray_launch", "run_ray_workers")

    def __init__(self) -> None:
        self.address: str | None = None
        self.echo: Callable[[str], None] = print  # notes for the user (run_study: its console)
        self._cluster: Any = None  # the Ray connection made by prepare(), used by launch()

    def prepare(self, spec: StudySpec, url: str, workers: int) -> None:
        """Ray present, storage shareable, Ray started or joined, resources checked (no GPU
        on the cluster, a request no node can hold): all before the study is created."""
        _require_ray(self.name)
        _shared_url(url, self.name)
        if self.name == "ray-tune":
            from losstune.studies.ray_tune import make_scheduler

            make_scheduler(spec)
        from losstune.studies.ray_launch import connect, plan_resources

        self._cluster = connect(spec, self.address)
        try:
            plan_resources(spec, self._cluster, workers)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        cluster, self._cluster = self._cluster, None
        if cluster is not None and cluster.started:
            import ray

            if ray.is_initialized():
                ray.shutdown()

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
        import importlib

        _require_ray(self.name)
        module, function = self.body
        run = getattr(importlib.import_module(module), function)
        cluster, self._cluster = self._cluster, None  # the body shuts down what it started
        return run(spec, _shared_url(url, self.name), n_trials=n_trials, workers=workers,
                   stop=stop, deadline=deadline, address=self.address, echo=self.echo,
                   cluster=cluster)


class TuneLauncher(RayLauncher):
    """Ray Tune with Optuna's ``OptunaSearch`` on the same RDB study (``--launcher ray-tune``).

    ``ray.scheduler: asha`` stops poor trials early (recorded PRUNED); ``--workers`` trials run
    at once. Tune asks and tells Optuna from the driver, so its trials have no heartbeat.
    """

    name = "ray-tune"
    body = ("losstune.studies.ray_tune", "run_tune")


LAUNCHERS: dict[str, Callable[[], Launcher]] = {
    "local": LocalLauncher,
    "ray": RayLauncher,
    "ray-tune": TuneLauncher,
}


def get_launcher(name: str) -> Launcher:
    if name not in LAUNCHERS:
        raise ValueError(f"unknown launcher {name!r}; expected one of {sorted(LAUNCHERS)}")
    return LAUNCHERS[name]()
