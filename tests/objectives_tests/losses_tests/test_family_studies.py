"""Each loss family's study file, run end to end in a tiny version through the study runner.

The real files in studies/configs/ are loaded, their data and encoder swapped for the synthetic
corpus and the hashing encoder (seconds per trial) and their epochs cut; everything else (losses,
auxiliary terms, heads, overrides, baselines) is the file's own. One test runs the metric-learning
study on the small real R8 subset with real MiniLM embeddings.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from losstune.studies import api
from losstune.studies.spec import load_study_file
from tests.conftest import R8_SMALL

REPO = Path(__file__).resolve().parents[3]
CONFIGS = REPO / "studies" / "configs"
FAMILIES = {
    "balanced_r52": {"loss.name": "db", "loss.db.mu": 0.9, "loss.db.kappa": 0.05,
                     "loss.db.lam": 2.0, "loss.db.gamma": 2.0},
    "metric_learning_r8": {"weight.triplet": pytest.approx(0.4 / 0.15),
                           "weight.arcface": pytest.approx(3.0), "loss.triplet.margin": 0.3,
                           "loss.triplet.miner": "all", "loss.arcface.scale": 8.0,
                           "loss.arcface.margin": pytest.approx(math.degrees(0.3))},
    "space_r8": {"weight.space.inter": 0.2, "weight.space.intra": 0.001,
                 "loss.space.m1": 0.5, "loss.space.m2": 0.5, "model.n_latent": 3},
    "g_loss_r8": {"loss.name": "g_loss", "loss.g_loss.lam": 0.8, "loss.g_loss.gamma": 0.7,
                  "loss.g_loss.sigma": 0.667},
}
TERMS = {
    "balanced_r52": {"term.db"},
    "metric_learning_r8": {"term.ce", "term.triplet", "term.arcface"},
    "space_r8": {"term.ce", "term.space.inter", "term.space.intra"},
    "g_loss_r8": {"term.g_loss.ce", "term.g_loss.graph"},
}


def _tiny(name: str, **overrides: Any) -> dict[str, Any]:
    study = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    study.update(name=f"tiny_{name}", n_trials=2, data={"name": "synthetic"},
                 encoder={"name": "hashing"}, pruner={"name": "none"})
    study["space"] = {**study.get("space", {}), "train.epochs": 3}
    study.setdefault("train", {}).update(threads=1)
    study["train"].pop("patience", None)
    study.pop("eval", None) if name == "balanced_r52" else None
    study.update(overrides)
    return study


@pytest.mark.parametrize("name", list(FAMILIES))
def test_study_file_baseline_is_the_paper_default(name: str) -> None:
    spec, _ = load_study_file(CONFIGS / f"{name}.yaml")
    from losstune.studies.runner import baseline_trials

    first = baseline_trials(spec, spec.compile_space())[0]
    for key, value in FAMILIES[name].items():
        assert first[key] == value, key


@pytest.mark.parametrize("name", list(FAMILIES))
def test_tiny_family_study_runs_end_to_end(name: str, sqlite_url: str) -> None:
    spec, text = api.study_from_dict(_tiny(name))
    summary = api.run_study(spec, study_text=text, storage=sqlite_url, progress=False)
    assert summary.finished == 2
    study = optuna.load_study(study_name=spec.name, storage=sqlite_url)
    first = study.trials[0]
    assert first.user_attrs.get("baseline") is True
    for key, value in FAMILIES[name].items():
        assert first.params[key] == value, key
    attrs = first.user_attrs
    assert TERMS[name] <= set(attrs), sorted(k for k in attrs if k.startswith("term."))
    for term in TERMS[name]:
        assert math.isfinite(attrs[term])
        curve = attrs["curve.term_" + term.split(".", 1)[1]]
        assert len(curve) == attrs["epochs_run"]
    assert 0.0 <= first.value <= 1.0


def test_balanced_family_on_multilabel_data(sqlite_url: str) -> None:
    """The same study on multi-label synthetic data: threshold rule, every baseline runs."""
    study = _tiny("balanced_r52", n_trials=3,
                  data={"name": "synthetic", "options": {"multilabel": True}})
    spec, text = api.study_from_dict(study)
    api.run_study(spec, study_text=text, storage=sqlite_url, progress=False)
    trials = [t for t in optuna.load_study(study_name=spec.name, storage=sqlite_url).trials
              if t.state.is_finished()]  # the other five baselines stay enqueued
    assert [t.params["loss.name"] for t in trials] == ["db", "bce", "focal"]
    assert all(t.user_attrs["prediction_rule"] == "threshold" for t in trials)
    assert all(math.isfinite(t.value) for t in trials)


def test_metric_learning_study_on_real_r8_subset(sqlite_url: str) -> None:
    study = _tiny("metric_learning_r8", data=R8_SMALL,
                  encoder={"name": "minilm", "max_length": 128})
    spec, text = api.study_from_dict(study)
    api.run_study(spec, study_text=text, storage=sqlite_url, progress=False)
    first = optuna.load_study(study_name=spec.name, storage=sqlite_url).trials[0]
    assert first.user_attrs["prediction_rule"] == "centroid"
    assert first.value > 0.3, "centroids of trained projections must beat chance on R8"
