"""End to end on real data: a small stratified subset of R8 encoded by real all-MiniLM-L6-v2.

The subset is encoded once per test run (session cache); every trial and the replay reuse it.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from losstune.objectives import cache
from losstune.studies import api
from losstune.studies.spec import load_study_file
from tests.conftest import R8_SMALL, r8_small_study

REPO = Path(__file__).resolve().parents[2]


def test_r8_subset_is_stratified_and_fixed() -> None:
    from losstune.objectives.data import load_dataset

    ds = load_dataset("r8", R8_SMALL["options"])
    assert (len(ds.train), len(ds.val), len(ds.test)) == (240, 80, 80)
    assert ds.class_counts("train").min() >= 1 and ds.num_classes == 8
    again = load_dataset("r8", {"limit": {"train": 240, "val": 80, "test": 80}})
    assert again.train.texts == ds.train.texts
    full = load_dataset("r8")
    assert len(full.train) + len(full.val) == 5485 and len(full.test) == 2189


def test_study_on_real_r8_subset_then_export_replays_exactly(sqlite_url: str,
                                                            tmp_path: Path) -> None:
    study = r8_small_study(n_trials=4, name="r8_small")
    spec, text = api.study_from_dict(study)
    summary = api.run_study(spec, study_text=text, storage=sqlite_url, progress=False)
    assert summary.finished == 4
    st = optuna.load_study(study_name="r8_small", storage=sqlite_url)
    best = st.best_trial
    assert 0.3 < best.value <= 1.0, "a linear head on MiniLM must beat chance on R8"
    assert best.user_attrs["config"]["encoder"]["name"] == "minilm"
    path, doc = api.export_trial("r8_small", tmp_path / "best.yaml", storage=sqlite_url)
    report = api.train_config(path)
    assert report.reproduced is True
    assert report.runs[0]["value"] == best.value
    assert report.runs[0]["test"]["macro_f1"] == pytest.approx(
        best.user_attrs["metric.test.macro_f1"])


def test_second_run_does_not_re_encode(sqlite_url: str) -> None:
    spec, text = api.study_from_dict(r8_small_study(n_trials=1, name="r8_again"))
    api.run_study(spec, study_text=text, storage=sqlite_url, progress=False)
    cache.clear_memory()
    from losstune.objectives import training

    training._prepared.clear()
    misses = cache.STATS.misses
    api.run_study(spec, study_text=text, storage=sqlite_url, progress=False, n_trials=2)
    assert cache.STATS.misses == misses, "the second run re-encoded texts"


def test_quickstart_file_is_the_documented_study() -> None:
    spec, _ = load_study_file(REPO / "studies" / "configs" / "quickstart.yaml")
    assert spec.data.name == "r8" and spec.encoder.name == "minilm"
    assert set(spec.loss.choices) >= {"ce", "bce", "focal"}
    names = spec.compile_space().names()
    for p in ("loss.name", "loss.focal.gamma", "train.lr", "train.weight_decay", "train.epochs"):
        assert p in names
    assert spec.metric_names == ["macro_f1"] and spec.pruner.name == "median"
    assert yaml.safe_load((REPO / "studies" / "configs" / "quickstart.yaml").read_text())
