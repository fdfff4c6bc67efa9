"""``--launcher ray-tune``: Ray Tune schedules the trials, Optuna's ``OptunaSearch`` samples
them on the study's storage.

The Tune body lives in :mod:`losstune.studies.launchers._tune_core`, which imports Ray at the
top; this module imports it only when a Tune study is prepared or launched.
"""

from __future__ import annotations

from typing import Any

from losstune.studies.launchers.base import LaunchRequest, WorkerResult
from losstune.studies.launchers.ray import RayLauncher


class TuneLauncher(RayLauncher):
    """Ray Tune with Optuna's ``OptunaSearch`` on the same RDB study (``--launcher ray-tune``).

    ``ray.scheduler: asha`` stops poor trials early (recorded PRUNED); ``--workers`` trials run
    at once. Tune asks and tells Optuna from the driver, so its trials have no heartbeat.
    Connecting to Ray and checking resources are the Ray launcher's; what differs is the
    scheduler check and the body.
    """

    name = "ray-tune"

    def check(self, request: LaunchRequest) -> None:
        """``ray.scheduler`` and ``ray.scheduler_args`` are valid (before Ray starts)."""
        from losstune.studies.launchers._tune_core import make_scheduler

        make_scheduler(request.spec)

    def run(self, request: LaunchRequest, cluster: Any) -> list[WorkerResult]:
        from losstune.studies.launchers._tune_core import run_tune

        return run_tune(request, cluster=cluster)
