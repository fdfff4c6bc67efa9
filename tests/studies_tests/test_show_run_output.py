"""What `run` and `show` print about failed trials, the "Next:" hints, the study used when no
name is given, and the progress bar's count of running trials."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console

from losstune.studies import api
from losstune.studies.cli import cli
from losstune.studies.confirm import confirm_study
from losstune.studies.progress import StudyProgress, count_text, running_share
from losstune.studies.runner import FailedTrialLogFilter
from tests.conftest import REPO, tiny_study


def faulty_study(n_trials: int, modes: list[str], **kw: object) -> dict:
    return tiny_study(
        n_trials=n_trials, plugins=["tests.plugins.faulty_loss"],
        loss={"choices": ["faulty"], "baseline": False},
        space={"train.epochs": {"low": 2, "high": 3}, "loss.faulty.mode": ["nan", "raise"]},
        enqueue=[{"loss.faulty.mode": m} for m in modes], **kw)


def invoke(*args: str) -> object:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_run_prints_one_line_per_failed_trial_and_show_groups_the_reasons(
        tmp_path: Path) -> None:
    study = faulty_study(1, ["nan", "raise", "raise"], max_failures=5)
    study["space"]["loss.faulty.mode"] = ["ok", "nan", "raise"]
    study["enqueue"].append({"loss.faulty.mode": "ok"})
    path = tmp_path / "faulty.yaml"
    path.write_text(yaml.safe_dump(study))
    url = f"sqlite:///{tmp_path / 'f.db'}"
    # a fresh process: Optuna's own logging as a user sees it (no -v)
    out = subprocess.run([sys.executable, "-m", "losstune.studies.cli", "run", str(path),
                          "--storage", url, "--no-progress"], capture_output=True, text=True,
                         cwd=REPO, timeout=600)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "Traceback" not in text and "failed with parameters" not in text
    failed_lines = [li for li in text.splitlines() if "FAILED:" in li]
    assert len(failed_lines) == 3
    assert "trial 1 [faulty] FAILED: RuntimeError: faulty loss raised on purpose" in text
    assert "Failed trials (3), by reason:" in text
    assert "  losstune export tiny -o best.yaml" in text  # trial 3 completed

    shown = invoke("show", "tiny", "--storage", url)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    start = lines.index("Failed trials (3), by reason:")
    assert lines[start + 1].startswith("  2 x RuntimeError: faulty loss raised on purpose")
    assert lines[start + 1].endswith("(trials 1, 2)")
    assert lines[start + 2].startswith("  1 x training loss became nan")
    assert lines[start + 2].endswith("(trial 0)")
    assert "losstune export tiny -o best.yaml" in shown.output
    assert "losstune confirm tiny" in shown.output

    groups = api.show_study("tiny", url).failures
    assert [(g.trials, g.reason.split(":")[0]) for g in groups] == [
        ([1, 2], "RuntimeError"), ([0], "training loss became nan at epoch 0, batch 0 (terms")]


def test_next_hints_offer_export_and_train_only_when_a_trial_completed(tmp_path: Path,
                                                                       sqlite_url: str) -> None:
    path = tmp_path / "faulty.yaml"
    path.write_text(yaml.safe_dump(faulty_study(2, ["nan", "raise"], max_failures=2)))
    result = CliRunner().invoke(cli, ["run", str(path), "--storage", sqlite_url,
                                      "--no-progress"])
    assert result.exit_code == 2
    assert "Failed trials (2), by reason:" in result.output
    assert "losstune export" not in result.output and "losstune train" not in result.output
    assert "-v run" in result.output
    shown = invoke("show", "tiny", "--storage", sqlite_url)
    assert "Failed trials (2), by reason:" in shown.output
    for hint in ("losstune export", "losstune train", "losstune confirm", "Top 5"):
        assert hint not in shown.output, hint


def test_optuna_failure_warnings_pass_only_with_verbose() -> None:
    record = logging.LogRecord("optuna.study._optimize", logging.WARNING, __file__, 1,
                               "Trial 3 failed with parameters: {} because of ...", None, None)
    other = logging.LogRecord("optuna.study._optimize", logging.WARNING, __file__, 1,
                              "something else", None, None)
    check = FailedTrialLogFilter()
    before = optuna.logging.get_verbosity()
    try:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        assert not check.filter(record) and check.filter(other)
        optuna.logging.set_verbosity(optuna.logging.INFO)  # -v: the traceback comes back
        assert check.filter(record)
    finally:
        optuna.logging.set_verbosity(before)


def test_show_and_compare_without_a_name_use_the_only_study(tmp_path: Path,
                                                            sqlite_url: str) -> None:
    spec, text = api.study_from_dict(tiny_study(n_trials=2))
    api.run_study(spec, study_text=text, storage=sqlite_url, progress=False)
    confirm_study("tiny", storage=sqlite_url, top=1, seeds=2)  # tiny--confirm is ignored
    shown = invoke("show", "--storage", sqlite_url)
    assert shown.exit_code == 0 and shown.output.startswith("study tiny: ")
    compared = invoke("compare", "--storage", sqlite_url)
    assert compared.exit_code == 0 and "tiny " in compared.output
    assert "tiny--confirm" not in compared.output

    spec, text = api.study_from_dict(tiny_study(n_trials=1, name="other"))
    api.run_study(spec, study_text=text, storage=sqlite_url, progress=False)
    for command in ("show", "compare"):
        result = CliRunner().invoke(cli, [command, "--storage", sqlite_url])
        assert result.exit_code == 2
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: 2 studies in ")
        assert "other, tiny;" in lines[0] and f"`losstune {command} other`" in lines[0]


def test_progress_counts_running_trials_and_their_epochs(sqlite_url: str) -> None:
    study = optuna.create_study(study_name="bar", storage=sqlite_url)
    epochs = optuna.distributions.IntDistribution(1, 10)
    done = study.ask({"train.epochs": epochs})
    study.tell(done, 0.5)
    running = study.ask({"train.epochs": epochs})
    for step in range(int(running.params["train.epochs"] // 2)):
        running.report(0.1, step)
    frozen = study.get_trials(deepcopy=False)[1]
    share = running_share(frozen)
    assert share == pytest.approx(int(running.params["train.epochs"] // 2)
                                  / running.params["train.epochs"])
    console = Console(file=io.StringIO(), force_terminal=True, width=200)
    with StudyProgress(study, n_trials=4, metric_names=["value"], console=console,
                       interval=0) as bar:
        task = bar._progress.tasks[0]
        assert task.completed == pytest.approx(1 + share)
        assert task.fields["count"] == "1/4 trials (+1 running)"
    assert count_text(3, 20, 0) == "3/20 trials"
    assert running_share(frozen) <= 0.95


def test_live_progress_prints_a_line_per_failed_trial(sqlite_url: str) -> None:
    study = optuna.create_study(study_name="bar", storage=sqlite_url)
    console = Console(file=io.StringIO(), force_terminal=True, width=200)
    with StudyProgress(study, n_trials=2, metric_names=["value"], console=console,
                       interval=0) as bar:
        trial = study.ask()
        trial.set_user_attr("fail_reason", "ValueError: bad knob\nsecond line")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        ok = study.ask()
        study.tell(ok, 0.3)
        bar.refresh()
    out = console.file.getvalue()
    assert "trial 0 [] FAILED: ValueError: bad knob" in out
    assert "second line" not in out and "trial 1" not in out
