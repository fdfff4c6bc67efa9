"""The default launcher: one worker in this process."""

from __future__ import annotations

from losstune.studies.launchers.base import Launcher, LauncherError, LaunchRequest, WorkerResult
from losstune.studies.runner import run_worker


class LocalLauncher(Launcher):
    """One worker in this process (the default): pruning, heartbeat and Ctrl-C all apply."""

    name = "local"

    def prepare(self, request: LaunchRequest) -> None:
        if request.workers != 1:
            raise LauncherError(
                f"the local launcher runs one worker, but --workers {request.workers} was "
                "given; use --launcher ray for several workers"
            )

    def launch(self, request: LaunchRequest) -> list[WorkerResult]:
        self.prepare(request)
        out = run_worker(request.spec, request.url, n_trials=request.n_trials,
                         stop=request.stop, deadline=request.deadline,
                         on_trial_end=request.on_trial_end)
        return [WorkerResult.from_run(out)]
