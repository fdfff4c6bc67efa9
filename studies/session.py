"""Run a study to its budget: the launcher, the progress display and Ctrl-C around the workers.

:func:`run_study` is what ``losstune run`` (and ``losstune suite`` for each arm's search) does;
the Python API re-exports it as :func:`losstune.studies.api.run_study`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

import losstune.storage as storage_pkg
from losstune.studies.runner import (
    RunSummary,
    StopFlag,
    count_states,
    create_or_load,
    fail_interrupted_trials,
    fail_stale_trials,
    install_sigint,
)
from losstune.studies.spec import StudySpec, check_device
from losstune.studies.store import check_storage_writable, resolve_url

logger = logging.getLogger(__name__)


def run_study(
    spec: StudySpec,
    *,
    study_text: str | None = None,
    storage: str | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    launcher: str = "local",
    workers: int | None = None,
    progress: bool = True,
    console: Any = None,
    address: str | None = None,
    threads: int | None = None,
) -> RunSummary:
    """Create or resume ``spec``'s study and run it up to its budget.

    ``n_trials`` overrides the file's budget; ``timeout`` (seconds) stops starting new trials
    after that time; ``threads`` overrides ``train.threads`` (torch threads per trial; by
    default one for a head that gains nothing from threads, else the usable cores shared by
    the workers). Ctrl-C stops after the current trial.
    """
    from losstune.studies.launchers import LaunchRequest, get_launcher
    from losstune.studies.progress import StudyProgress, make_console

    console = console or make_console()
    url = resolve_url(storage, spec)
    budget = n_trials if n_trials is not None else spec.n_trials
    if budget < 1:
        raise ValueError(f"`n_trials >= 1` must hold, but got n_trials={budget}")
    if threads is not None and threads < 1:
        raise ValueError(f"`threads >= 1` must hold, but got threads={threads}")
    timeout = timeout if timeout is not None else spec.timeout
    n_workers = workers if workers is not None else (spec.ray.workers if launcher != "local"
                                                     else 1)
    chosen = get_launcher(launcher)
    if launcher == "local":
        check_device(spec.train.device)  # Ray launchers check the cluster's GPUs instead
    check_storage_writable(url)
    request = LaunchRequest(
        spec=spec, url=url, n_trials=budget, workers=n_workers, stop=StopFlag(),
        address=address, threads=threads,
        # launcher notes go where this run's output goes
        echo=lambda text: console.print(text, highlight=False, markup=False),
    )
    text = study_text if study_text is not None else yaml.safe_dump(
        spec.model_dump(mode="json"), sort_keys=False)
    logger.info("run %r: launcher %s, %d worker(s), budget %d trial(s)%s", spec.name, launcher,
                n_workers, budget, f", timeout {timeout:g}s" if timeout else "")
    chosen.prepare(request)  # launcher errors leave the storage untouched
    try:
        console.print(f"storage: {storage_pkg.mask_url(url)}", highlight=False)
        study, created = create_or_load(spec, text, url)
        stale = [] if created else fail_stale_trials(study, spec.storage_options.grace_period)
        if not created:
            logger.info("resume: study %r exists in %s (same space fingerprint and settings); "
                        "%s", spec.name, storage_pkg.mask_url(url),
                        f"failing {len(stale)} stale trial(s) {stale}" if stale
                        else "no stale RUNNING trial")
        if stale:
            console.print(f"failed {len(stale)} stale RUNNING trial(s) left by a dead run: "
                          f"{stale} (they are retried)", highlight=False)
        counts = count_states(study)
        finished = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
        started = time.time()
        logger.info("study %r: %d finished, %d running, %d failed, %d waiting; budget %d",
                    spec.name, finished, counts[TrialState.RUNNING], counts[TrialState.FAIL],
                    counts[TrialState.WAITING], budget)
        if finished >= budget:
            console.print(f"study {spec.name!r} already has {finished} finished trial(s) "
                          f"(budget {budget}): nothing to do", highlight=False)
            return _summary(study, url, budget, 0, 0.0, "nothing to do", created, stale)
        console.print(
            f"{'created' if created else 'resuming'} study {spec.name!r}: {finished}/{budget} "
            f"finished; objective: validation {', '.join(spec.metric_names)}"
            + (" (multi-objective: no pruning)" if spec.is_multi_objective else ""),
            highlight=False,
        )
        restore = install_sigint(request.stop)
        request.deadline = started + timeout if timeout else None
        try:
            with StudyProgress(study, n_trials=budget, metric_names=spec.metric_names,
                               console=console, enabled=progress) as bar:
                request.on_trial_end = lambda s, t: bar.refresh()
                results = chosen.launch(request)
        except KeyboardInterrupt:
            fail_interrupted_trials(study)  # the aborted trial records why it failed
            raise
        finally:
            restore()
    finally:
        chosen.close()
    reason = "; ".join(sorted({r.reason for r in results}))
    return _summary(study, url, budget, sum(r.started for r in results),
                    time.time() - started, reason, created, stale)


def _summary(study: optuna.Study, url: str, budget: int, started_here: int, seconds: float,
             reason: str, created: bool, stale: list[int]) -> RunSummary:
    counts = count_states(study)
    return RunSummary(
        study_name=study.study_name,
        storage=storage_pkg.mask_url(url),
        n_trials=budget,
        finished=counts[TrialState.COMPLETE] + counts[TrialState.PRUNED],
        complete=counts[TrialState.COMPLETE],
        pruned=counts[TrialState.PRUNED],
        failed=counts[TrialState.FAIL],
        started_here=started_here,
        seconds=seconds,
        stopped_reason=reason,
        created=created,
        stale_failed=stale,
    )
