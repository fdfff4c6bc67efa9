"""``--launcher ray``: N Ray tasks, each running the study's worker loop on the shared storage.

This module never imports Ray at the top: it is imported on the CLI's path. The Ray mechanics
live in :mod:`losstune.studies.launchers._ray_core`, which imports Ray only inside functions.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any

import losstune.storage as storage_pkg
from losstune.studies.launchers import _ray_core
from losstune.studies.launchers.base import Launcher, LauncherError, LaunchRequest, WorkerResult


class RayLauncher(Launcher):
    """N Ray tasks, each running :func:`losstune.studies.runner.run_worker` on the shared RDB
    study.

    Resources per worker come from the study file (``ray.num_cpus``, ``ray.num_gpus``:
    fractions share a GPU). Without an address Ray starts locally with ``address="local"``;
    ``--address`` / ``ray.address`` joins a cluster. Ctrl-C: workers stop after their current
    trial; a second Ctrl-C cancels them (their trials are failed and retried on resume).
    """

    name = "ray"

    def __init__(self) -> None:
        self._cluster: Any = None  # the Ray connection made by prepare(), used by launch()

    def prepare(self, request: LaunchRequest) -> None:
        """Ray present, storage shareable, launcher settings valid, Ray started or joined,
        resources checked (no GPU on the cluster, a request no node can hold): all before the
        study is created."""
        self._require_ray()
        self._shared_url(request.url)
        self.check(request)
        self._cluster = _ray_core.connect(request.spec, request.address)
        try:
            _ray_core.plan_resources(request.spec, self._cluster, request.workers,
                                     request.threads)
        except BaseException:
            self.close()
            raise

    def check(self, request: LaunchRequest) -> None:
        """Settings this launcher checks before Ray starts (none for plain Ray workers)."""
        return None

    def launch(self, request: LaunchRequest) -> list[WorkerResult]:
        self._require_ray()
        shared = dataclasses.replace(request, url=self._shared_url(request.url))
        cluster, self._cluster = self._cluster, None  # the body shuts down what it started
        return self.run(shared, cluster)

    def run(self, request: LaunchRequest, cluster: Any) -> list[WorkerResult]:
        """The launcher's body: start the workers on ``cluster`` (None: connect now)."""
        return _ray_core.run_ray_workers(request, cluster=cluster)

    def close(self) -> None:
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            _ray_core.disconnect(cluster)

    def _require_ray(self) -> None:
        if importlib.util.find_spec("ray") is None:
            raise LauncherError(f"--launcher {self.name} needs Ray; install the 'ray' extra: "
                                "pip install -e '.[ray]'")

    def _shared_url(self, url: str) -> str:
        """The storage URL as worker processes must see it (checked: it can be shared)."""
        backend = storage_pkg.backend_of(url)
        if backend == "memory" or (backend == "sqlite" and storage_pkg.sqlite_path(url) is None):
            raise LauncherError(
                "an in-memory storage cannot be shared with worker processes; use an SQLite "
                f"file or PostgreSQL with --launcher {self.name}"
            )
        return _ray_core.shareable_url(url)
