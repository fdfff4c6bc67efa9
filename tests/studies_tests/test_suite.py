"""``losstune suite``: a tiny suite end to end on synthetic data with the hashing encoder, its
files checked against the stored runs; resume after SIGKILL; bad suite files rejected before
anything runs."""

from __future__ import annotations

import csv
import math
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from click.testing import CliRunner
from optuna.trial import TrialState
from rich.console import Console

from losstune.objectives.data.registry import DEFAULT_SPLIT_SEED
from losstune.storage import get_storage
from losstune.studies import api
from losstune.studies.cli import cli
from losstune.studies.report import write_report
from losstune.studies.runner import StudyMismatchError
from losstune.studies.stats import holm, paired_test, t_interval, verdict
from losstune.studies.suite.outputs import fmt_cell, fmt_diff, fmt_p
from losstune.studies.suite.spec import SuiteFileError, config_digest, load_suite
from tests.studies_tests.ray_helpers import REPO, subprocess_env

BASE_STUDY = REPO / "examples" / "suites" / "studies" / "synthetic_base.yaml"


def tiny_suite(name: str = "tiny-suite", **overrides: Any) -> dict[str, Any]:
    """Three arms (two searched, one fixed), one dataset, 2 seeds x 2 holdouts."""
    suite: dict[str, Any] = {
        "name": name,
        "metric": "macro_f1",
        "metrics": ["accuracy", "threshold.macro_f1"],
        "rules": ["argmax", "threshold"],
        "seeds": 2,
        "splits": 2,
        "confirm": {"top": 2, "seeds": 1},
        "datasets": {"synth": {"name": "synthetic"}},
        "arms": {
            "ce": {"study": str(BASE_STUDY), "set": {"n_trials": 2}},
            "focal": {"study": str(BASE_STUDY),
                      "set": {"n_trials": 2, "loss": {"choices": ["focal"]}}},
            "bce": {"study": str(BASE_STUDY), "set": {"loss": {"choices": ["bce"]}},
                    "search": False},
        },
        "comparisons": [{"arm": "focal", "baseline": "ce", "claim": "greater"},
                        {"arm": "ce", "baseline": "bce", "claim": "greater",
                         "label": "ce beats default bce"}],
        "sections": [{"title": "Focal", "claim": "focal wins", "comparisons": ["focal vs ce"],
                      "published": [{"arm": "focal", "dataset": "synth",
                                     "metric": "macro_f1", "value": 0.5,
                                     "source": "a made-up number"}]}],
        "quick": {"n_trials": 1},
    }
    suite.update(overrides)
    return suite


def write(tmp_path: Path, suite: dict[str, Any], name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def _runs(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=get_storage(url)).get_trials()


def test_tiny_suite_end_to_end(tmp_path: Path, sqlite_url: str) -> None:
    path = write(tmp_path, tiny_suite())
    out = tmp_path / "out"
    md = tmp_path / "docs" / "RESULTS.md"
    md.parent.mkdir()
    result = api.run_suite(path, storage=sqlite_url, output=out, markdown=md,
                           console=Console(quiet=True))
    names = set(optuna.get_all_study_names(get_storage(sqlite_url)))
    assert {"tiny-suite--runs", "tiny-suite.ce.synth", "tiny-suite.focal.synth",
            "tiny-suite.ce.synth--confirm", "tiny-suite.focal.synth--confirm"} <= names
    assert "tiny-suite.bce.synth" not in names  # a fixed arm has no search
    runs = _runs(sqlite_url, "tiny-suite--runs")
    assert len(runs) == 12 and all(t.state == TrialState.COMPLETE for t in runs)
    keys = {(t.user_attrs["arm"], t.user_attrs["split"], t.user_attrs["seed"]) for t in runs}
    assert len(keys) == 12  # no duplicates
    for t in runs:
        a = t.user_attrs
        assert a["seed"] in (10000, 10001) and a["split"] in (0, 1)
        options = a["config"]["data"]["options"]
        # holdout 0 is the dataset's own split: no split_seed anywhere
        assert options.get("split_seed") == (None if a["split"] == 0 else DEFAULT_SPLIT_SEED + 1)
        assert a["config"]["train"]["seed"] == a["seed"]
        for key in ("metric.test.macro_f1", "metric.test.argmax.macro_f1",
                    "metric.test.threshold.macro_f1", "metric.val.macro_f1", "best_epoch",
                    "epochs_run", "best_is_last", "config_digest"):
            assert key in a, key
        # single-label data: the study's own rule is argmax
        assert a["metric.test.argmax.macro_f1"] == a["metric.test.macro_f1"]
    # the fixed arm is the paper-default trial of bce, identical on every run but the seed
    spec = load_suite(path)
    bce = [t for t in runs if t.user_attrs["arm"] == "bce"]
    assert {t.user_attrs["config_digest"] for t in bce} == {config_digest(spec.unit("bce",
                                                                                "synth").fixed)}
    # the searched arm's choice is its best confirmed trial
    ce = optuna.load_study(study_name="tiny-suite.ce.synth", storage=get_storage(sqlite_url))
    rows = ce.user_attrs["confirmation"]
    assert len(rows) == 2
    best = max(rows, key=lambda r: r["val_stats"]["mean"])
    choice = optuna.load_study(study_name="tiny-suite--runs",
                               storage=get_storage(sqlite_url)).user_attrs["choice.ce.synth"]
    assert choice["trial"] == best["trial"]

    # ------------------------------------------------------------- the files vs the runs
    files = {p.name for p in result.files}
    assert {"RESULTS.md", "results.csv", "results.tex", "forest.png"} <= files
    assert (out / "forest.png").stat().st_size > 1000
    with (out / "results.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 12
    by_key = {(t.user_attrs["arm"], t.user_attrs["split"], t.user_attrs["seed"]): t
              for t in runs}
    for row in table:
        t = by_key[(row["arm"], int(row["split"]), int(row["seed"]))]
        assert float(row["metric.test.macro_f1"]) == t.user_attrs["metric.test.macro_f1"]
        assert float(row["value"]) == t.value
    text = (out / "RESULTS.md").read_text()

    def values(arm: str, metric: str = "metric.test.macro_f1") -> dict[tuple[int, int], float]:
        return {(t.user_attrs["split"], t.user_attrs["seed"]): t.user_attrs[metric]
                for t in runs if t.user_attrs["arm"] == arm}

    for arm in ("ce", "focal", "bce"):
        assert fmt_cell(t_interval(list(values(arm).values()))) in text
        assert fmt_cell(t_interval(list(values(arm, "metric.test.accuracy").values()))) in text
    tests = []
    for arm, base in (("focal", "ce"), ("ce", "bce")):
        a, b = values(arm), values(base)
        keys = sorted(a)
        tests.append(paired_test([a[k] for k in keys], [b[k] for k in keys]))
    adjusted = holm([t.t_p for t in tests])
    for test, p, label in zip(tests, adjusted, ("focal vs ce", "ce beats default bce"),
                              strict=True):
        line = next(li for li in text.splitlines() if li.startswith(f"| {label} |"))
        assert fmt_diff(test) in line and fmt_p(test.t_p) in line and fmt_p(p) in line
        assert f"**{verdict(test, p, claim='greater', alpha=0.05, min_effect=0.005)}**" in line
        assert test.n == 4
    assert "Holm" in text and "fewer than 10 paired runs" in text  # the caption
    assert "a made-up number" in text and "0.5000" in text  # published beside ours
    assert "git" in text and "machine" in text and "wall time" in text
    assert "tiny-suite.ce.synth" in text
    assert "\\toprule" in (out / "results.tex").read_text()
    # --markdown: the same report with links relative to its own folder
    copy = md.read_text()
    assert "](../out/forest.png)" in copy and "](forest.png)" in text

    # ------------------------------------------------------------- linked studies are marked
    listed = {r.name: r.linked for r in api.list_studies(sqlite_url)}
    assert listed["tiny-suite--runs"].description == "evaluation runs of suite 'tiny-suite'"
    assert listed["tiny-suite.ce.synth--confirm"].source == "tiny-suite.ce.synth"
    assert listed["tiny-suite.ce.synth"] is None
    from optuna_dashboard import get_note

    runs_study = optuna.load_study(study_name="tiny-suite--runs", storage=get_storage(sqlite_url))
    assert "Evaluation runs of suite `tiny-suite`" in get_note(runs_study)
    page = write_report("tiny-suite--runs", tmp_path / "runs-report",
                        storage=sqlite_url).read_text()
    assert "Evaluation runs of suite" in page and "<th>arm</th>" in page

    # ------------------------------------------------------------- a rerun does nothing new
    again = api.run_suite(path, storage=sqlite_url, output=out, console=Console(quiet=True))
    assert len(_runs(sqlite_url, "tiny-suite--runs")) == 12
    assert len(_runs(sqlite_url, "tiny-suite.ce.synth--confirm")) == 2  # confirmation reused
    assert [r.test.diff.mean for r in again.tables.comparisons] == \
        [r.test.diff.mean for r in result.tables.comparisons]

    # ------------------------------------------------------------- a changed arm is refused
    changed = tiny_suite()
    changed["arms"]["ce"]["set"]["space"] = {"train.epochs": {"low": 3, "high": 5}}
    write(tmp_path, changed)
    with pytest.raises(StudyMismatchError, match="tiny-suite.ce.synth"):
        api.run_suite(path, storage=sqlite_url, output=out, console=Console(quiet=True))
    assert len(_runs(sqlite_url, "tiny-suite--runs")) == 12


def test_suite_resumes_after_sigkill_without_duplicate_runs(tmp_path: Path) -> None:
    db = tmp_path / "suite.db"
    url = f"sqlite:///{db}"
    suite = tiny_suite(name="killed", confirm={"top": 1, "seeds": 1}, sections=[],
                       comparisons=[{"arm": "ce", "baseline": "bce"}])
    del suite["arms"]["focal"]
    path = write(tmp_path, suite)
    cmd = [str(REPO / ".venv/bin/losstune"), "suite", str(path), "--storage", url, "-o",
           str(tmp_path / "out"), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    stored = 0
    try:
        deadline = time.monotonic() + 240
        while stored < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            stored = _count_runs(db, "killed--runs")
        assert stored >= 2, proc.communicate(timeout=60)[0][-3000:]
        proc.kill()  # SIGKILL in the middle of the paired evaluation
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    killed_at = _count_runs(db, "killed--runs")
    assert killed_at < 8, "the suite finished before it could be killed"
    assert not (tmp_path / "out" / "RESULTS.md").exists()
    out = subprocess.run(cmd, cwd=tmp_path, env=subprocess_env(), capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "already stored" in out.stdout
    runs = _runs(url, "killed--runs")
    assert len(runs) == 8 and all(t.state == TrialState.COMPLETE for t in runs)
    keys = [(t.user_attrs["arm"], t.user_attrs["split"], t.user_attrs["seed"],
             t.user_attrs["config_digest"]) for t in runs]
    assert len(set(keys)) == 8
    study = optuna.load_study(study_name="killed.ce.synth", storage=get_storage(url))
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 2  # budget exactly
    assert (tmp_path / "out" / "RESULTS.md").exists()


def _count_runs(db: Path, study: str) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = con.execute(
                "SELECT count(*) FROM trials t JOIN studies s ON s.study_id = t.study_id "
                "WHERE s.study_name = ? AND t.state = 'COMPLETE'", (study,)).fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return 0
    return int(row[0])


@pytest.mark.parametrize(("change", "message"), [
    ({"comparisons": [{"arm": "fcal", "baseline": "ce"}]},
     "comparisons[0].arm: unknown arm 'fcal'; expected one of ['bce', 'ce', 'focal']. "
     "Did you mean 'focal'?"),
    ({"comparisons": [{"arm": "focal", "baseline": "cee"}]},
     "comparisons[0].baseline: unknown baseline arm 'cee'"),
    ({"comparisons": [{"arm": "focal", "baseline": "ce", "datasets": ["synht"]}]},
     "comparisons[0].datasets[0]: unknown dataset 'synht'"),
    ({"metric": "macro_f2"}, "metric: unknown test metric 'macro_f2'"),
    ({"metrics": ["threshold.macro_f1"], "rules": []},
     "metrics[0]: 'threshold.macro_f1' asks for prediction rule 'threshold'"),
    ({"seeds": 0}, "seeds: Input should be greater than or equal to 1"),
    ({"arms": {"ce": {"study": str(BASE_STUDY), "sett": {}}}},
     "arms.ce.sett: unknown key 'sett'. Did you mean 'set'? Valid keys: config, datasets, "
     "label, search, set, study"),
    ({"arms": {"ce": {"study": "missing.yaml"}}}, "study file"),
    ({"arms": {"ce": {"study": str(BASE_STUDY), "set": {"loss": {"choices": ["nope"]}}}}},
     "arms.ce (dataset synth)"),
    ({"datasets": {"synth": {"name": "synthetik"}}}, "Unknown dataset 'synthetik'"),
])
def test_bad_suite_file_one_line_exit_2_nothing_run(tmp_path: Path, change: dict[str, Any],
                                                    message: str) -> None:
    suite = tiny_suite()
    arms = {**suite["arms"], **change.get("arms", {})}
    suite.update(change)
    suite["arms"] = arms
    if "comparisons" in change:
        suite["sections"] = []
    path = write(tmp_path, suite)
    db = tmp_path / "never.db"
    result = CliRunner().invoke(cli, ["suite", str(path), "--storage", f"sqlite:///{db}", "-o",
                                      str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert message in lines[0]
    assert not db.exists() and not (tmp_path / "out").exists()


def test_bad_arguments_and_quick(tmp_path: Path) -> None:
    path = write(tmp_path, tiny_suite())
    db = tmp_path / "never.db"
    result = CliRunner().invoke(cli, ["suite", str(path), "--storage", f"sqlite:///{db}",
                                      "--only", "focl"])
    assert result.exit_code == 2 and "--only: unknown arm 'focl'" in result.output
    assert not db.exists()
    no_quick = tiny_suite()
    del no_quick["quick"]
    with pytest.raises(SuiteFileError, match="--quick needs a `quick:` section"):
        load_suite(write(tmp_path, no_quick, "noquick.yaml"), quick=True)
    quick = load_suite(path, quick=True)
    assert quick.name == "tiny-suite-quick" and quick.runs_study == "tiny-suite-quick--runs"
    assert quick.unit("ce", "synth").study.name == "tiny-suite-quick.ce.synth"
    assert quick.unit("ce", "synth").study.n_trials == 1
    assert (quick.seeds, quick.splits) == (2, 2)  # never fewer paired runs unless asked
    assert any("search budget shrunk" in n for n in quick.notes)


def test_fixed_config_arms_and_fine_tuned_arms(tmp_path: Path, sqlite_url: str) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the fine-tuned arm would run here")
    config = {"loss": {"terms": [{"name": "ce"}]}, "encoder": {"name": "hashing"},
              "train": {"epochs": 2, "lr": 0.05, "threads": 1}}
    nan = {**config, "loss": {"terms": [{"name": "probe", "params": {"fault": "nan"}}]},
           "plugins": ["tests.studies_tests.fault_plugin"]}
    suite = tiny_suite(
        name="fixed",
        arms={
            "inline": {"config": config},
            "nan": {"config": nan},
            "tuned": {"study": str(BASE_STUDY), "search": False,
                      "set": {"encoder": {"name": "minilm", "fine_tune": True},
                              "train": {"device": "auto"}}},
        },
        comparisons=[{"arm": "inline", "baseline": "tuned"}], sections=[], seeds=1, splits=2)
    path = write(tmp_path, suite)
    out = tmp_path / "out"
    result = api.run_suite(path, storage=sqlite_url, output=out, console=Console(quiet=True))
    runs = _runs(sqlite_url, "fixed--runs")
    assert sorted((t.user_attrs["arm"], t.state.name) for t in runs) == [
        ("inline", "COMPLETE"), ("inline", "COMPLETE"), ("nan", "FAIL"), ("nan", "FAIL")]
    assert all(t.user_attrs["diverged"] for t in runs if t.user_attrs["arm"] == "nan")
    assert [(n.arm, n.dataset) for n in result.not_run] == [("tuned", "synth")]
    text = (out / "RESULTS.md").read_text()
    assert "## Not run here" in text
    assert f"losstune suite {path} --storage {sqlite_url} --only tuned" in text
    line = next(li for li in text.splitlines() if li.startswith("| nan | fixed configuration"))
    assert "probe(fault=nan)" in line and "| 0 (2 diverged) |" in line
    with (out / "results.csv").open() as handle:
        states = sorted((r["arm"], r["state"]) for r in csv.DictReader(handle))
    assert states == [("inline", "COMPLETE")] * 2 + [("nan", "FAIL")] * 2
    row = next(r for r in result.tables.comparisons)
    assert row.test is None and row.verdict == "no runs"
    api.run_suite(path, storage=sqlite_url, output=out, console=Console(quiet=True))
    assert len(_runs(sqlite_url, "fixed--runs")) == 4  # diverged runs are not retried
    bad = tiny_suite(arms={"x": {"config": {"loss": {"terms": [{"name": "cee"}]}}}},
                     comparisons=[], sections=[])
    with pytest.raises(SuiteFileError, match=r"arms.x \(dataset synth\): config.loss.terms\[0\]"):
        load_suite(write(tmp_path, bad, "bad.yaml"))


def test_example_suites_are_valid() -> None:
    for path in sorted((REPO / "examples" / "suites").glob("*.yaml")):
        suite = load_suite(path)
        assert suite.units, path
        assert math.isfinite(suite.spec.alpha)
        load_suite(path, quick=True)


def test_two_worker_processes_run_every_unit_once_and_match_one_process(
        tmp_path: Path) -> None:
    """``--workers 2``: the units are shared out (each run stored once), the chosen
    configurations and every run's test metric equal those of a one-process run of the same
    suite (both with 1 torch thread), and both invocations are recorded for the wall time."""
    suite = tiny_suite(name="parallel", sections=[])
    path = write(tmp_path, suite)
    one_url = f"sqlite:///{tmp_path / 'one.db'}"
    two_url = f"sqlite:///{tmp_path / 'two.db'}"
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one process with the thread count each of 2 workers gets (2 cores)
    try:
        api.run_suite(path, storage=one_url, output=tmp_path / "one",
                      console=Console(quiet=True))
    finally:
        torch.set_num_threads(threads)
    proc = subprocess.run(
        [str(REPO / ".venv/bin/losstune"), "suite", str(path), "--storage", two_url,
         "--workers", "2", "--no-progress", "-o", str(tmp_path / "two")],
        cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[worker 0]" in proc.stdout and "[worker 1]" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr

    def runs_of(url: str) -> dict[tuple[Any, ...], float]:
        trials = _runs(url, "parallel--runs")
        keys = [(t.user_attrs["arm"], t.user_attrs["split"], t.user_attrs["seed"])
                for t in trials]
        assert len(keys) == len(set(keys)) == 12  # every run once, none twice
        return {k: t.user_attrs["metric.test.macro_f1"] for k, t in zip(keys, trials, strict=True)}

    assert runs_of(two_url) == runs_of(one_url)
    one = optuna.load_study(study_name="parallel--runs", storage=get_storage(one_url))
    two = optuna.load_study(study_name="parallel--runs", storage=get_storage(two_url))
    for key in ("choice.ce.synth", "choice.focal.synth"):
        assert one.user_attrs[key]["digest"] == two.user_attrs[key]["digest"]
    assert [e["workers"] for e in two.user_attrs["invocations"]] == [2]
    claims = {k for k in two.user_attrs if k.startswith("claim.")}
    assert claims == {"claim.ce.synth", "claim.focal.synth", "claim.bce.synth"}
    assert "(2 worker processes)" in (tmp_path / "two" / "RESULTS.md").read_text()

    # a rerun resumes: nothing left to do, a second invocation is recorded with the total
    again = api.run_suite(path, storage=two_url, output=tmp_path / "two", workers=2,
                          console=Console(quiet=True))
    assert len(_runs(two_url, "parallel--runs")) == 12
    assert "over the 2 invocations" in (again.output / "RESULTS.md").read_text()


def test_workers_below_one_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, tiny_suite())
    result = CliRunner().invoke(cli, ["suite", str(path), "--workers", "0"])
    assert result.exit_code == 2 and "--workers" in result.output
    with pytest.raises(SuiteFileError, match="--workers must be at least 1"):
        api.run_suite(path, storage=f"sqlite:///{tmp_path / 'x.db'}", workers=0)
    assert not (tmp_path / "x.db").exists()
