"""Ctrl-C on a real ``losstune run`` process: the second one aborts the running trial, which is
recorded as failed with a ``fail_reason`` saying so, and the run exits with status 130."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

from tests.conftest import tiny_study


def _wait_for(db: Path, query: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=5) as con:
                    if con.execute(query).fetchone()[0]:
                        return
            except sqlite3.OperationalError:
                pass  # tables not created yet
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for: {query}")


def test_second_ctrl_c_records_why_the_trial_failed(tmp_path: Path) -> None:
    study = tiny_study(name="ctrlc", n_trials=2, loss={"choices": ["ce"], "baseline": False},
                       space={"train.epochs": 100_000})  # runs until interrupted
    path = tmp_path / "ctrlc.yaml"
    path.write_text(yaml.safe_dump(study))
    db = tmp_path / "ctrlc.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "losstune.studies.cli", "run", str(path), "--storage",
         f"sqlite:///{db}", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        # the trial is inside training once its config is stored
        _wait_for(db, "SELECT count(*) FROM trial_user_attributes WHERE key = 'config'", proc)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)  # first: finish the current trial, then stop
        time.sleep(1.0)
        assert proc.poll() is None, "the first Ctrl-C must not abort the trial"
        proc.send_signal(signal.SIGINT)  # second: abort it
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, output
    assert "aborted (second Ctrl-C)" in output
    trials = optuna.load_study(study_name="ctrlc", storage=f"sqlite:///{db}").trials
    assert [t.state for t in trials] == [TrialState.FAIL]
    assert "interrupted" in trials[0].user_attrs["fail_reason"]
    assert "Ctrl-C" in trials[0].user_attrs["fail_reason"]
