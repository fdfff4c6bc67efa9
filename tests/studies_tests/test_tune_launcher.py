"""``--launcher ray-tune``: OptunaSearch on the study's RDB storage with ASHA; trials that ASHA
stops are PRUNED (not COMPLETE) with the attributes of their last result; Tune trials are marked
so that a resume fails the ones a dead Tune driver left RUNNING."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from losstune.storage import get_storage
from losstune.studies import api
from losstune.studies.launchers import LauncherError
from losstune.studies.runner import TUNE_OWNER_ATTR, create_or_load, fail_stale_trials
from tests.conftest import require, tiny_study
from tests.studies_tests.ray_helpers import (
    REPO,
    local_ray,
    pids_using,
    probe_study,
    running_trial_with_worker,
    stop_leftovers,
    subprocess_env,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

GOOD = {"train.lr": 0.3}
BAD = {"train.lr": 1e-4}


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    yield from local_ray(num_cpus=2)


def trials_of(name: str, url: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=get_storage(url)).trials


@pytest.mark.ray
def test_asha_stopped_trials_are_pruned_with_their_last_attributes(ray_cluster: Any,
                                                                  sqlite_url: str) -> None:
    enqueue = [dict(GOOD, **{"loss.probe.fault": "ok"}), dict(BAD, **{"loss.probe.fault": "ok"}),
               dict(GOOD, **{"loss.probe.fault": "raise"})]
    study = probe_study(
        name="tuned", n_trials=3, max_failures=30, enqueue=enqueue,
        space={"train.epochs": 4, "train.lr": {"low": 1e-4, "high": 0.5, "log": True},
               "loss.probe.fault": ["ok", "raise"]},
        ray={"workers": 1, "scheduler": "asha",
             "scheduler_args": {"grace_period": 1, "reduction_factor": 2}})
    spec, text = api.study_from_dict(study)
    summary = api.run_study(spec, study_text=text, storage=sqlite_url, launcher="ray-tune",
                            progress=False)
    trials = trials_of("tuned", sqlite_url)
    assert summary.finished == 3
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    good, bad, raised = trials[:3]

    assert good.state == TrialState.COMPLETE
    assert good.value == good.user_attrs["metric.val.macro_f1"]
    assert good.intermediate_values == dict(enumerate(good.user_attrs["curve.val_macro_f1"]))
    assert "metric.test.macro_f1" in good.user_attrs and good.user_attrs["epochs_run"] == 4

    assert bad.state == TrialState.PRUNED  # upstream OptunaSearch would say COMPLETE
    assert bad.user_attrs["pruned_by"] == "ray.tune scheduler"
    assert bad.user_attrs["epochs_run"] < 4 and "metric.test.macro_f1" not in bad.user_attrs
    curve = bad.user_attrs["curve.val_macro_f1"]
    assert len(curve) == bad.user_attrs["epochs_run"]  # the attributes of its last result
    assert bad.value == curve[-1] and bad.intermediate_values == dict(enumerate(curve))

    assert raised.state == TrialState.FAIL
    assert "raised on purpose" in raised.user_attrs["fail_reason"]
    for t in trials:  # owned by this (live) driver; each with its config, like local trials
        assert t.user_attrs[TUNE_OWNER_ATTR] == f"{socket.gethostname()}:{os.getpid()}:{t.number}"
        assert "config" in t.user_attrs and "worker" in t.user_attrs

    # the same user attributes as a trial of the local launcher (dashboard columns)
    local, text = api.study_from_dict(dict(study, name="tuned_local", n_trials=1, enqueue=[
        dict(GOOD, **{"loss.probe.fault": "ok"})]))
    api.run_study(local, study_text=text, storage=sqlite_url, progress=False)
    local_keys = set(trials_of("tuned_local", sqlite_url)[0].user_attrs) - {"enqueued"}
    assert local_keys <= set(good.user_attrs)


def test_scheduler_settings_are_checked() -> None:
    import importlib.util

    require(importlib.util.find_spec("ray") is not None, "Ray (the 'ray' extra)")
    from losstune.studies.launchers._tune_core import make_scheduler, max_epochs

    spec, _ = api.study_from_dict(tiny_study(ray={"scheduler": "asha"}))
    assert max_epochs(spec) == 4 and make_scheduler(spec)._max_t == 5
    multi, _ = api.study_from_dict(tiny_study(metric=["macro_f1", "accuracy"],
                                              ray={"scheduler": "asha"}))
    with pytest.raises(LauncherError, match="needs a single objective"):
        make_scheduler(multi)
    bad, _ = api.study_from_dict(tiny_study(ray={"scheduler": "asha",
                                                 "scheduler_args": {"grace": 1}}))
    with pytest.raises(LauncherError, match="not valid for ASHA"):
        make_scheduler(bad)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_resume_fails_trials_of_a_dead_tune_driver_but_not_of_a_live_one(
        sqlite_url: str) -> None:
    spec, text = api.study_from_dict(tiny_study(name="owned", n_trials=3))
    study, _ = create_or_load(spec, text, sqlite_url)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer exists
    host = socket.gethostname()
    orphan = study.ask()
    orphan.suggest_categorical("loss.name", ["ce", "bce", "focal"])
    orphan.set_user_attr(TUNE_OWNER_ATTR, f"{host}:{dead.pid}:{orphan.number}")
    live = study.ask()
    live.set_user_attr(TUNE_OWNER_ATTR, f"{host}:{os.getpid()}:{live.number}")
    # Tune trials have no heartbeat: even past the grace period a live driver keeps its trial
    failed = fail_stale_trials(study, grace_period=0)
    assert failed == [orphan.number]
    trials = trials_of("owned", sqlite_url)
    assert trials[orphan.number].state == TrialState.FAIL
    assert trials[orphan.number].user_attrs["stale_reason"] == "Ray Tune driver died"
    assert trials[live.number].state == TrialState.RUNNING
    retry = [t for t in trials
             if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == orphan.number]
    assert len(retry) == 1 and retry[0].state == TrialState.WAITING
    # the retry is a new attempt: it does not inherit the dead attempt's owner or reason
    assert TUNE_OWNER_ATTR not in retry[0].user_attrs
    assert "stale_reason" not in retry[0].user_attrs


@pytest.mark.ray
@pytest.mark.slow
def test_killed_tune_driver_leaves_running_trials_that_the_next_run_fails_and_retries(
        tmp_path: Path) -> None:
    pytest.importorskip("ray.tune")
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    temp_dir = f"/tmp/ltrt-{os.getpid()}"
    study = probe_study(name="tunekill", n_trials=3, space={"loss.probe.delay": 0.1},
                        ray={"workers": 2, "init": {"_temp_dir": temp_dir}})
    path = tmp_path / "tunekill.yaml"
    path.write_text(yaml.safe_dump(study))
    cmd = [str(REPO / ".venv/bin/losstune"), "run", str(path), "--storage", url,
           "--launcher", "ray-tune", "--no-progress"]
    # TMPDIR: the killed driver cannot remove its Tune results folder; keep it under tmp_path
    env = subprocess_env(TMPDIR=str(tmp_path))
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        number = None
        while number is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            number = running_trial_with_worker(tmp_path / "tune.db")
        assert number is not None, proc.communicate(timeout=60)[0][-3000:]
        proc.kill()  # SIGKILL the Tune driver in the middle of a trial
        proc.wait(timeout=60)
        time.sleep(2)
        # Ray's processes share the driver's fate
        assert not pids_using(temp_dir), "the dead driver's Ray processes are still alive"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stop_leftovers(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
    left = [t for t in trials_of("tunekill", url) if t.state == TrialState.RUNNING]
    assert number in [t.number for t in left]
    out = subprocess.run(cmd[:5] + ["--no-progress"], cwd=REPO, env=subprocess_env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "stale RUNNING trial(s)" in out.stdout
    trials = trials_of("tunekill", url)
    assert trials[number].state == TrialState.FAIL
    assert trials[number].user_attrs["stale_reason"] == "Ray Tune driver died"
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
