"""Confirmation with fresh seeds, replay with seeds, multi-objective studies, reports, compare,
and secrets kept out of everything stored, exported or reported."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
import yaml
from click.testing import CliRunner

from losstune.studies import api
from losstune.studies.cli import cli
from losstune.studies.confirm import CONFIRM_SUFFIX, confirm_study, stored_confirmation
from tests.conftest import tiny_study


def run(study: dict, url: str, **kw: object) -> api.RunSummary:
    spec, text = api.study_from_dict(study)
    return api.run_study(spec, study_text=text, storage=url, progress=False, **kw)


@pytest.fixture
def tiny_done(sqlite_url: str) -> str:
    run(tiny_study(n_trials=5), sqlite_url)
    return sqlite_url


def test_confirm_stores_per_seed_and_summary_results(tiny_done: str) -> None:
    report = confirm_study("tiny", storage=tiny_done, top=2, seeds=3)
    assert len(report.rows) == 2
    study = optuna.load_study(study_name="tiny", storage=tiny_done)
    best = study.best_trial
    rows = stored_confirmation(study)
    assert best.number in rows and len(rows) == 2
    row = rows[best.number]
    assert row.seeds == [1, 2, 3]  # fresh: never the search seed 0
    assert len(row.val) == 3 and row.val_stats["n"] == 3
    assert row.val_stats["mean"] == pytest.approx(sum(row.val) / 3)
    assert row.winners_curse == pytest.approx(best.value - row.val_stats["mean"])
    linked = optuna.load_study(study_name="tiny" + CONFIRM_SUFFIX, storage=tiny_done)
    assert len(linked.trials) == 6
    assert {t.user_attrs["source_trial"] for t in linked.trials} == set(rows)
    assert all("metric.test.macro_f1" in t.user_attrs for t in linked.trials)
    ranked = report.ranked()
    assert ranked[0].val_stats["mean"] >= ranked[1].val_stats["mean"]


def test_show_and_export_report_the_confirmation(tiny_done: str, tmp_path: Path) -> None:
    before = api.show_study("tiny", tiny_done).confirmation_note
    assert "not confirmed yet" in before
    confirm_study("tiny", storage=tiny_done, top=2, seeds=2)
    after = api.show_study("tiny", tiny_done).confirmation_note
    assert "confirmed with 2 fresh seeds" in after and "winner's curse" in after
    path, doc = api.export_trial("tiny", tmp_path / "c.yaml", storage=tiny_done,
                                 confirmed=True)
    best_confirmed = doc["provenance"]["confirmation"]
    means = [r.val_stats["mean"] for r in stored_confirmation(
        optuna.load_study(study_name="tiny", storage=tiny_done)).values()]
    assert best_confirmed["val_stats"]["mean"] == max(means)
    result = CliRunner().invoke(cli, ["confirm", "tiny", "--top", "1", "--seeds", "2",
                                      "--storage", tiny_done])
    assert result.exit_code == 0 and "winner's curse" in result.output


def test_export_confirmed_without_confirmation_fails(tiny_done: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["export", "tiny", "--confirmed", "-o",
                                      str(tmp_path / "x.yaml"), "--storage", tiny_done])
    assert result.exit_code == 2 and "no confirmed trial" in result.output


def test_train_with_seeds_reports_intervals_and_saves_weights(tiny_done: str,
                                                              tmp_path: Path) -> None:
    path, doc = api.export_trial("tiny", tmp_path / "best.yaml", storage=tiny_done)
    report = api.train_config(path, seeds=3, output_dir=tmp_path / "out")
    assert report.seeds == [0, 1, 2] and report.reproduced is True
    stats = report.summary["val.macro_f1"]
    assert stats["n"] == 3 and stats["ci95"] >= 0
    weights = torch.load(tmp_path / "out" / "weights_seed0.pt", weights_only=True)
    assert "classifier.weight" in weights
    saved = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())
    assert saved["config"]["loss"] == doc["config"]["loss"]
    result = CliRunner().invoke(cli, ["train", str(path), "--seeds", "2"])
    assert result.exit_code == 0 and "95% CI" in result.output


def test_multi_objective_study_pareto_export_and_no_pruning(sqlite_url: str,
                                                            tmp_path: Path) -> None:
    study = tiny_study(n_trials=4, name="multi",
                       metric=["macro_f1", {"name": "train_seconds"}],
                       pruner={"name": "median"})
    run(study, sqlite_url)
    st = optuna.load_study(study_name="multi", storage=sqlite_url)
    assert st.metric_names == ["macro_f1", "train_seconds"]
    assert [d.name for d in st.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert all(t.state.name == "COMPLETE" and len(t.values) == 2 for t in st.trials)
    shown = api.show_study("multi", sqlite_url)
    assert shown.pareto and shown.chosen is None
    assert [r.number for r in shown.pareto] == sorted(t.number for t in st.best_trials)
    assert all(len(r.values or []) == 2 and r.loss for r in shown.pareto)
    result = CliRunner().invoke(cli, ["export", "multi", "-o", str(tmp_path / "b.yaml"),
                                      "--storage", sqlite_url])
    assert result.exit_code == 2 and "--pareto" in result.output
    paths = api.export_pareto("multi", tmp_path / "front", storage=sqlite_url)
    assert len(paths) == len(st.best_trials)
    report = confirm_study("multi", storage=sqlite_url, top=1, seeds=2)
    assert report.rows[0].trial == max(st.best_trials, key=lambda t: t.values[0]).number


def test_report_writes_html_and_pngs(tiny_done: str, tmp_path: Path) -> None:
    confirm_study("tiny", storage=tiny_done, top=2, seeds=2)
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["report", "tiny", "-o", str(out), "--storage", tiny_done])
    assert result.exit_code == 0, result.output
    page = (out / "index.html").read_text()
    import re

    assert "<script" in page and "Plotly.newPlot" in page  # plotly.js embedded ...
    assert not re.search(r"<script[^>]*src=[\"']https?://", page)  # ... and no CDN
    for name in ("history.png", "importance.png", "parallel.png", "confirmation.png"):
        assert (out / "figures" / name).stat().st_size > 1000, name
    from collections import Counter

    chosen = Counter(t.params["loss.name"] for t in optuna.load_study(
        study_name="tiny", storage=tiny_done).trials)
    assert max(chosen.values()) >= 2
    for loss, count in chosen.items():  # a slice plot needs 2 trials of that loss
        assert (out / "figures" / f"slice_{loss}.png").exists() == (count >= 2), loss
    assert list((out / "figures").glob("terms_trial*.png"))
    again = CliRunner().invoke(cli, ["report", "tiny", "-o", str(out), "--storage", tiny_done])
    assert again.exit_code == 2 and "--force" in again.output
    afile = tmp_path / "afile"
    afile.write_text("x")
    bad = CliRunner().invoke(cli, ["report", "tiny", "-o", str(afile), "--storage", tiny_done])
    assert bad.exit_code == 2 and "is a file" in bad.output and afile.read_text() == "x"


def test_per_loss_slice_keeps_conditional_knobs(tiny_done: str) -> None:
    from losstune.studies.report import loss_substudy

    study = optuna.load_study(study_name="tiny", storage=tiny_done)
    chosen = {t.params["loss.name"] for t in study.trials}
    for loss in chosen:
        sub = loss_substudy(study, loss)
        assert len(sub.trials) == sum(t.params["loss.name"] == loss for t in study.trials)
        assert all(t.params["loss.name"] == loss for t in sub.trials)
    assert "ce" in chosen and len(chosen) > 1  # trial 0 is the CE baseline
    # ce's conditional knob is in every trial of its copy, so Optuna's slice and importance
    # plots keep it; over the whole study they drop it
    from optuna.search_space import intersection_search_space

    sub = loss_substudy(study, "ce")
    assert "loss.ce.label_smoothing" in intersection_search_space(sub.trials)
    assert "loss.ce.label_smoothing" not in intersection_search_space(study.trials)


def test_compare_markdown(tiny_done: str, tmp_path: Path) -> None:
    run(tiny_study(n_trials=2, name="tiny_b"), tiny_done)
    md = tmp_path / "cmp.md"
    result = CliRunner().invoke(cli, ["compare", "tiny", "tiny_b", "--markdown", str(md),
                                      "--storage", tiny_done])
    assert result.exit_code == 0
    text = md.read_text()
    assert text.count("\n") == 4 and "| tiny |" in text and "| tiny_b |" in text


SECRET = "hunter2-secret"


def test_storage_password_never_stored_exported_or_reported(sqlite_url: str,
                                                            tmp_path: Path) -> None:
    study = tiny_study(n_trials=2, storage=f"postgresql://losstune:{SECRET}@db.invalid/x",
                       description=f"see postgresql://losstune:{SECRET}@db.invalid/x")
    run(study, sqlite_url)  # the --storage flag wins over the file's storage
    st = optuna.load_study(study_name="tiny", storage=sqlite_url)
    blob = repr(st.user_attrs) + "".join(repr(t.user_attrs) for t in st.trials)
    assert SECRET not in blob and "***" in st.user_attrs["study_file"]
    path, _ = api.export_trial("tiny", tmp_path / "e.yaml", storage=sqlite_url)
    assert SECRET not in path.read_text()
    from losstune.studies.report import write_report

    index = write_report("tiny", tmp_path / "rep", storage=sqlite_url)
    assert SECRET not in index.read_text()
