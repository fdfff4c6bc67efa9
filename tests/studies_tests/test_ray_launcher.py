"""``--launcher ray`` with real Ray (one local instance for the module) and real processes:
shared budget, progress of all workers, faults (SIGKILL, exceptions, NaN), PostgreSQL with four
workers, Ctrl-C, GPU requests on a machine without GPUs."""

from __future__ import annotations

import io
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from rich.console import Console

from losstune.studies import api
from losstune.studies.launchers import LAUNCHERS, LauncherError, RayLauncher
from losstune.studies.launchers._ray_core import (
    RayCluster,
    plan_resources,
    rebuild_spec,
    spec_for_workers,
)
from tests.conftest import tiny_study
from tests.storage_tests.servers import require_postgres, study_cleanup, unique_name
from tests.studies_tests.ray_helpers import local_ray, probe_study

pytestmark = pytest.mark.ray
optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    yield from local_ray(num_cpus=2)


def run(study: dict[str, Any], url: str, **kw: Any) -> api.RunSummary:
    spec, text = api.study_from_dict(study)
    kw.setdefault("progress", False)
    return api.run_study(spec, study_text=text, storage=url, launcher="ray", **kw)


def trials_of(name: str, url: str) -> list[optuna.trial.FrozenTrial]:
    from losstune.storage import get_storage

    return optuna.load_study(study_name=name, storage=get_storage(url)).trials


def create(study: dict[str, Any], url: str) -> None:
    """Create the study before a run starts in another thread (that thread and this one's
    polling must not both create the tables of a fresh SQLite file)."""
    from losstune.studies.runner import create_or_load

    spec, text = api.study_from_dict(study)
    create_or_load(spec, text, url)


def worker_pids(trials: list[optuna.trial.FrozenTrial]) -> set[str]:
    return {t.user_attrs["worker"] for t in trials if "worker" in t.user_attrs}


# ---------------------------------------------------------------------- without workers
def test_ray_launchers_are_registered_and_import_ray_lazily() -> None:
    assert LAUNCHERS["ray"] is RayLauncher and "ray-tune" in LAUNCHERS
    import ast
    import importlib
    import inspect
    import pkgutil

    import losstune.studies.launchers as launchers_package

    names = [m.name for m in pkgutil.iter_modules(launchers_package.__path__)]
    assert {"base", "local", "ray", "tune", "_ray_core", "_tune_core"} <= set(names)
    for name in names:
        if name == "_tune_core":
            continue  # imported only when a Tune study runs: it imports Ray at the top
        module = importlib.import_module(f"losstune.studies.launchers.{name}")
        tree = ast.parse(inspect.getsource(module))
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = [a.name for n in top for a in n.names] + [
            n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
        assert not any(name == "ray" or name.startswith("ray.") for name in names)


def test_spec_travels_to_workers_as_a_dict() -> None:
    spec, _ = api.study_from_dict(probe_study(ray={"num_gpus": 0.5, "workers": 3}))
    data = spec_for_workers(spec, device="cpu")
    assert isinstance(data, dict)
    rebuilt = rebuild_spec(data)
    assert rebuilt.compile_space().fingerprint() == spec.compile_space().fingerprint()
    assert rebuilt.plugins == spec.plugins and rebuilt.ray == spec.ray
    assert rebuilt.train.device == "cpu"


def _cluster(cpu: float, gpu: float, nodes: int = 1) -> RayCluster:
    node = {"CPU": cpu, "GPU": gpu}
    return RayCluster(started=True, address="local",
                      resources={"CPU": cpu * nodes, "GPU": gpu * nodes}, nodes=[node] * nodes)


def test_resources_fractional_gpus_cpu_fallback_and_clear_errors() -> None:
    gpu_spec, _ = api.study_from_dict(tiny_study(ray={"num_gpus": 0.5, "num_cpus": 1}))
    plan = plan_resources(gpu_spec, _cluster(cpu=8, gpu=2), workers=4)
    assert (plan.num_gpus, plan.slots, plan.device) == (0.5, 4, "cuda")
    plan = plan_resources(gpu_spec, _cluster(cpu=8, gpu=1), workers=4)
    assert plan.slots == 2 and "only 2 of 4 workers" in plan.notes[0]
    with pytest.raises(LauncherError, match=r"ray.num_gpus=0.5 GPU per worker, but the Ray "
                                            r"cluster has no GPU.*cpu_fallback"):
        plan_resources(gpu_spec, _cluster(cpu=8, gpu=0), workers=2)
    fallback, _ = api.study_from_dict(tiny_study(ray={"num_gpus": 1, "cpu_fallback": True}))
    plan = plan_resources(fallback, _cluster(cpu=2, gpu=0), workers=2)
    assert (plan.num_gpus, plan.device) == (0.0, "cpu") and "train on CPU" in plan.notes[0]
    big, _ = api.study_from_dict(tiny_study(ray={"num_cpus": 4}))
    with pytest.raises(LauncherError, match="ray.num_cpus=4 CPU per worker"):
        plan_resources(big, _cluster(cpu=2, gpu=0), workers=1)
    cuda, _ = api.study_from_dict(tiny_study(train={"device": "cuda", "threads": 1}))
    with pytest.raises(LauncherError, match="ray.num_gpus is 0"):
        plan_resources(cuda, _cluster(cpu=2, gpu=1), workers=1)


@pytest.mark.parametrize(("args", "message"), [
    (["--launcher", "ray", "--storage", "memory"], "in-memory storage cannot be shared"),
    (["--launcher", "ray", "--storage", "sqlite://"], "in-memory storage cannot be shared"),
    (["--workers", "2"], "use --launcher ray for several workers"),
])
def test_launcher_misuse_exits_2_with_a_message(args: list[str], message: str,
                                                tmp_path: Any) -> None:
    import yaml
    from click.testing import CliRunner

    from losstune.studies.cli import cli

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(tiny_study(name="misuse")))
    storage = [] if "--storage" in args else ["--storage", f"sqlite:///{tmp_path / 's.db'}"]
    result = CliRunner().invoke(cli, ["run", str(path), "--no-progress", *storage, *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "s.db").exists(), "a launcher error must not touch the storage"


# ---------------------------------------------------------------------- with workers
def test_gpu_study_on_a_machine_without_gpus_exits_2_with_a_message(
        ray_cluster: Any, sqlite_url: str, tmp_path: Any) -> None:
    import yaml
    from click.testing import CliRunner

    from losstune.studies.cli import cli

    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump(tiny_study(name="gpu", ray={"num_gpus": 1})))
    result = CliRunner().invoke(cli, ["run", str(path), "--storage", sqlite_url,
                                      "--launcher", "ray", "--workers", "2", "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "has no GPU" in result.output and "cpu_fallback" in result.output
    import optuna

    assert "gpu" not in optuna.get_all_study_names(sqlite_url), "nothing written on error"


def test_two_workers_share_the_budget_exactly_and_the_driver_shows_all_trials(
        ray_cluster: Any, sqlite_url: str) -> None:
    _warm_worker_processes(ray_cluster, 2)  # both workers start at once, even on a busy box
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=False)
    study = probe_study(name="shared", n_trials=6, space={"loss.probe.delay": 0.02},
                        ray={"workers": 2, "num_gpus": 0.5, "cpu_fallback": True})
    summary = run(study, sqlite_url, console=console, progress=True)
    trials = trials_of("shared", sqlite_url)
    assert summary.finished == 6 and summary.started_here == 6
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6  # exactly n_trials, no more
    assert sorted(t.number for t in trials) == list(range(6))
    assert len(worker_pids(trials)) == 2  # both workers ran trials
    assert all(t.user_attrs["device"] == "cpu" for t in trials)  # cpu_fallback
    text = out.getvalue()
    assert "Ray: using the Ray instance" in text and "SQLite" in text and "train on CPU" in text
    printed = {int(n) for n in re.findall(r"^trial (\d+) \[probe\] complete", text, re.M)}
    assert printed == set(range(6))  # the driver's progress shows every worker's trials
    for t in trials:  # the same record as a local run's
        for key in ("config", "metric.val.macro_f1", "metric.test.macro_f1", "term.probe",
                    "curve.val_macro_f1", "best_epoch", "prediction_rule"):
            assert key in t.user_attrs, key


def test_workers_train_with_their_share_of_the_cores(ray_cluster: Any, sqlite_url: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    study = probe_study(name="shares", n_trials=2, train={},  # train.threads unset
                        ray={"workers": 2})
    with caplog.at_level(logging.INFO, logger="losstune"):
        summary = run(study, sqlite_url, console=Console(file=io.StringIO()))
    assert summary.finished == 2
    # the local instance has 2 CPUs: 2 workers x 1 thread, each reserving 1 CPU
    assert [t.user_attrs["config"]["train"]["threads"] for t in trials_of("shares", sqlite_url)] \
        == [1, 1]
    assert ("Ray workers: 2 (2 at once), 1 torch thread(s) each (default: cores / workers), "
            "resources per worker: num_cpus=1 (from the threads), num_gpus=0") in caplog.text


def test_exceptions_and_nan_fail_alone_and_the_others_go_on(ray_cluster: Any,
                                                            sqlite_url: str) -> None:
    faults = ["raise", "nan", "ok", "raise"]
    study = probe_study(name="faults", n_trials=4, max_failures=30,
                        space={"loss.probe.fault": ["ok", "nan", "raise"]},
                        enqueue=[{"loss.probe.fault": f} for f in faults],
                        ray={"workers": 2})
    summary = run(study, sqlite_url)
    trials = trials_of("faults", sqlite_url)
    assert summary.finished == 4
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) >= 3  # the three enqueued faults at least
    for t in trials:
        fault = t.params["loss.probe.fault"]
        if fault == "ok":
            assert t.state == TrialState.COMPLETE, t
        else:
            assert t.state == TrialState.FAIL
            reason = t.user_attrs["fail_reason"]
            assert ("raised on purpose" in reason) if fault == "raise" else (
                "training loss became nan" in reason)


def _wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _running_with_worker(name: str, url: str, min_age: float) -> optuna.trial.FrozenTrial | None:
    trials = trials_of(name, url)
    now = time.time()
    for t in trials:
        if t.state == TrialState.RUNNING and "worker" in t.user_attrs and \
                t.datetime_start is not None and now - t.datetime_start.timestamp() > min_age:
            return t
    return None


def test_sigkilled_worker_trial_fails_after_grace_is_retried_and_budget_is_reached(
        ray_cluster: Any, sqlite_url: str) -> None:
    study = probe_study(name="killed", n_trials=5, space={"loss.probe.delay": 0.1},
                        storage_options={"heartbeat_interval": 1, "grace_period": 2},
                        ray={"workers": 2})
    create(study, sqlite_url)
    box: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: box.update(summary=run(study, sqlite_url)))
    runner.start()
    victim = _wait_for(lambda: _running_with_worker("killed", sqlite_url, 0.5), 120,
                       "a running trial")
    pid = int(victim.user_attrs["worker"].rsplit(":", 1)[1])
    os.kill(pid, signal.SIGKILL)  # the Ray worker process, in the middle of its trial
    runner.join(timeout=300)
    assert not runner.is_alive()
    summary = box["summary"]
    trials = trials_of("killed", sqlite_url)
    killed = trials[victim.number]
    assert killed.state == TrialState.FAIL
    assert (killed.datetime_complete - victim.datetime_start).total_seconds() >= 2  # grace
    retries = [t for t in trials
               if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == victim.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == killed.params
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert summary.finished == 5
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 5


def test_ctrl_c_stops_workers_after_their_current_trial(ray_cluster: Any,
                                                        sqlite_url: str) -> None:
    study = probe_study(name="sigint", n_trials=30, space={"loss.probe.delay": 0.05},
                        ray={"workers": 2})

    create(study, sqlite_url)

    def interrupt() -> None:
        _wait_for(lambda: any(t.state == TrialState.COMPLETE
                              for t in trials_of("sigint", sqlite_url)),
                  120, "a finished trial")
        os.kill(os.getpid(), signal.SIGINT)  # the driver's Ctrl-C handler (main thread)

    threading.Thread(target=interrupt, daemon=True).start()
    summary = run(study, sqlite_url)
    trials = trials_of("sigint", sqlite_url)
    assert "interrupted (Ctrl-C)" in summary.stopped_reason
    assert 1 <= summary.finished < 30
    assert all(t.state == TrialState.COMPLETE for t in trials)  # none cut off mid-trial


def _warm_worker_processes(ray: Any, n: int) -> None:
    """Start ``n`` Ray worker processes that have imported the trial code, so that the
    launcher's ``n`` tasks start together (idle workers are reused). Each warm-up task waits at
    a barrier until all ``n`` run at once, so they cannot share a process however slowly the
    (busy) machine starts them."""

    class Barrier:
        def __init__(self) -> None:
            self.arrived = 0

        def arrive(self) -> None:
            self.arrived += 1

        def count(self) -> int:
            return self.arrived

    barrier = ray.remote(num_cpus=0)(Barrier).remote()

    def warm(barrier: Any) -> int:
        import losstune.objectives.training  # noqa: F401
        import losstune.studies.runner  # noqa: F401
        import tests.studies_tests.fault_plugin  # noqa: F401

        ray.get(barrier.arrive.remote())
        deadline = time.time() + 300
        while ray.get(barrier.count.remote()) < n and time.time() < deadline:
            time.sleep(0.05)
        return os.getpid()

    pids = ray.get([ray.remote(num_cpus=0.5)(warm).remote(barrier) for _ in range(n)])
    assert len(set(pids)) == n


def _max_overlap(trials: list[optuna.trial.FrozenTrial]) -> int:
    events = sorted([(t.datetime_start, 1) for t in trials]
                    + [(t.datetime_complete, -1) for t in trials])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


@pytest.mark.postgres
def test_four_workers_on_postgresql_unique_numbers_none_lost_exact_count(
        ray_cluster: Any) -> None:
    url = require_postgres()
    name = unique_name("ray4")
    _warm_worker_processes(ray_cluster, 4)
    with study_cleanup(name, url):
        study = probe_study(name=name, n_trials=12, space={"loss.probe.delay": 0.05},
                            ray={"workers": 4, "num_cpus": 0.5})
        summary = run(study, url)
        trials = trials_of(name, url)
        numbers = [t.number for t in trials]
        assert len(numbers) == len(set(numbers)) == 12
        assert sorted(numbers) == list(range(12))  # none lost, none extra
        assert all(t.state == TrialState.COMPLETE for t in trials)
        assert summary.finished == 12 and summary.started_here == 12
        # the workers really claimed and ran trials side by side
        assert _max_overlap(trials) >= 3, [(t.datetime_start, t.datetime_complete)
                                           for t in trials]
