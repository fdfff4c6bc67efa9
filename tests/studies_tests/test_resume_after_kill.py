"""A real ``losstune run`` process killed with SIGKILL in the middle of a trial; the next
``losstune run`` of the same study resumes it: the stale RUNNING trial is failed and retried,
not counted as done, and the budget is reached exactly."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import optuna
import yaml
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from losstune.storage import get_storage
from tests.studies_tests.ray_helpers import (
    REPO,
    probe_study,
    running_trial_with_worker,
    subprocess_env,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_killed_run_is_resumed_and_its_stale_trial_failed_and_retried(tmp_path: Path) -> None:
    db = tmp_path / "resume.db"
    url = f"sqlite:///{db}"
    # grace 30 s: the resume must fail the trial because its process is gone, not because
    # its heartbeat went quiet
    study = probe_study(name="resume", n_trials=3, space={"loss.probe.delay": 0.1},
                        storage_options={"heartbeat_interval": 10, "grace_period": 30})
    path = tmp_path / "resume.yaml"
    path.write_text(yaml.safe_dump(study))
    cmd = [str(REPO / ".venv/bin/losstune"), "run", str(path), "--storage", url,
           "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    number = None
    try:
        deadline = time.monotonic() + 180
        while number is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.3)
            number = running_trial_with_worker(db)
        assert number is not None, proc.communicate(timeout=60)[0][-3000:]
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    before = optuna.load_study(study_name="resume", storage=get_storage(url)).trials
    victim = before[number]
    assert victim.state == TrialState.RUNNING  # left behind by the dead run

    out = subprocess.run(cmd, cwd=tmp_path, env=subprocess_env(), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"failed 1 stale RUNNING trial(s) left by a dead run: [{victim.number}]" in out.stdout
    assert "resuming study 'resume'" in out.stdout
    trials = optuna.load_study(study_name="resume", storage=get_storage(url)).trials
    stale = trials[victim.number]
    assert stale.state == TrialState.FAIL
    assert stale.user_attrs["stale_reason"] == "worker process died"
    retries = [t for t in trials
               if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == victim.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == stale.params
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3  # the stale one not counted
    assert "resume: 3/3 finished (3 complete, 0 pruned, 1 failed)" in out.stdout
