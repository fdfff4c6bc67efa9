"""The default launcher: one worker in this process."""

from __future__ import annotations

import logging
import os

from losstune.studies.launchers.base import (
    Launcher,
    LauncherError,
    LaunchRequest,
    ThreadPlan,
    WorkerResult,
    plan_threads,
    spec_with_threads,
)
from losstune.studies.runner import run_worker

logger = logging.getLogger(__name__)


class LocalLauncher(Launcher):
    """One worker in this process (the default): pruning, heartbeat and Ctrl-C all apply."""

    name = "local"

    def prepare(self, request: LaunchRequest) -> None:
        if request.workers != 1:
            raise LauncherError(
                f"the local launcher runs one worker, but --workers {request.workers} was "
                "given; use --launcher ray for several workers"
            )

    def plan(self, request: LaunchRequest) -> ThreadPlan:
        """Threads of the trials: ``--threads``, ``train.threads``, else the default of the
        study's head (every usable core, or one for a head that gains nothing from more)."""
        from losstune.objectives.config import usable_cores

        return plan_threads(request.spec, request.threads, concurrent=1, cores=usable_cores())

    def launch(self, request: LaunchRequest) -> list[WorkerResult]:
        self.prepare(request)
        plan = self.plan(request)
        logger.info("local launcher: 1 worker in process %d, %d torch thread(s) per trial (%s), "
                    "%d usable core(s)", os.getpid(), plan.threads, plan.source, plan.cores)
        warning = plan.warning()
        if warning:
            request.echo(warning)
        spec = spec_with_threads(request.spec, plan.threads)
        out = run_worker(spec, request.url, n_trials=request.n_trials,
                         stop=request.stop, deadline=request.deadline,
                         on_trial_end=request.on_trial_end)
        return [WorkerResult.from_run(out)]
