"""End to end on the new datasets with the fast hashing encoder: studies, group metrics and
per-class F1 as trial attributes, eval.class_groups from the study file."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest

from losstune.objectives.config import TrialConfig
from losstune.objectives.training import ConfigurationError, run_trial
from losstune.studies import api
from tests.conftest import tiny_study

MR_SMALL = {"name": "mr", "options": {"limit": {"train": 300, "val": 100, "test": 100}}}
HIER_SMALL = {"name": "20ng_hierarchical",
              "options": {"limit": {"train": 300, "val": 100, "test": 100}}}


def test_tiny_study_on_mr_runs_end_to_end(sqlite_url: str) -> None:
    study = tiny_study(name="mr_tiny", n_trials=3, data=MR_SMALL,
                       loss={"choices": ["ce", "focal"], "baseline": True})
    spec, text = api.study_from_dict(study)
    summary = api.run_study(spec, study_text=text, storage=sqlite_url, progress=False)
    assert summary.finished == 3 and summary.failed == 0
    st = optuna.load_study(study_name="mr_tiny", storage=sqlite_url)
    best = st.best_trial
    assert 0.0 < best.value <= 1.0
    attrs = best.user_attrs
    assert attrs["prediction_rule"] == "argmax"
    assert set(attrs["per_class_f1.test"]) == {"negative", "positive"}
    assert attrs["metric.test.macro_f1"] == pytest.approx(
        np.mean(list(attrs["per_class_f1.test"].values())))
    assert "metric.val.head_macro_f1" in attrs  # both MR classes are head classes
    assert "metric.val.tail_macro_f1" not in attrs  # no tail class: no tail metric


def test_multilabel_study_on_the_derived_hierarchy_with_class_groups(sqlite_url: str) -> None:
    counts = None
    from losstune.objectives.data import load_dataset

    counts = load_dataset(HIER_SMALL["name"], HIER_SMALL["options"]).class_counts("train")
    head_min, tail_max = 60, 20  # on this 300-document subset all three groups are non-empty
    groups = {"head": int((counts >= head_min).sum()), "tail": int((counts <= tail_max).sum())}
    assert groups["head"] and groups["tail"] and len(counts) > sum(groups.values())
    study = tiny_study(name="hier_tiny", n_trials=2, data=HIER_SMALL,
                       loss={"choices": ["bce", "db"], "baseline": True},
                       eval={"rule": "threshold", "class_groups": [head_min, tail_max]},
                       metric="micro_f1")
    spec, text = api.study_from_dict(study)
    summary = api.run_study(spec, study_text=text, storage=sqlite_url, progress=False)
    assert summary.finished == 2 and summary.failed == 0
    st = optuna.load_study(study_name="hier_tiny", storage=sqlite_url)
    for trial in st.trials:
        attrs = trial.user_attrs
        assert attrs["prediction_rule"] == "threshold"
        assert attrs["config"]["eval"]["class_groups"] == [head_min, tail_max]
        for split in ("val", "test"):
            for group in ("head", "medium", "tail"):
                assert f"metric.{split}.{group}_macro_f1" in attrs
                assert f"metric.{split}.{group}_micro_f1" in attrs
        per_class = attrs["per_class_f1.test"]
        assert len(per_class) == 38 and "comp.sys.mac" in per_class
        tail_names = [n for n, c in zip(load_dataset(HIER_SMALL["name"],
                                                     HIER_SMALL["options"]).class_names,
                                        counts, strict=True) if c <= tail_max]
        tail_values = [per_class[n] for n in tail_names if per_class[n] is not None]
        assert attrs["metric.test.tail_macro_f1"] == pytest.approx(np.mean(tail_values))


def _config(**eval_: object) -> TrialConfig:
    return TrialConfig.model_validate({
        "data": {"name": "synthetic"}, "encoder": {"name": "hashing"},
        "loss": {"terms": [{"name": "ce"}]}, "train": {"epochs": 2, "threads": 1},
        "eval": eval_})


def test_class_groups_reach_the_metrics_and_empty_groups_fail_early() -> None:
    from losstune.objectives.data import load_dataset

    counts = load_dataset("synthetic").class_counts("train")
    default = run_trial(_config())
    assert "head_macro_f1" in default.val and "tail_macro_f1" not in default.val
    head_min = int(np.sort(counts)[-1])  # only the largest class is head
    tail_max = int(np.sort(counts)[0])  # only the smallest class is tail
    grouped = run_trial(_config(class_groups=(head_min, tail_max)))
    for key in ("head_macro_f1", "medium_macro_f1", "tail_macro_f1"):
        assert key in grouped.val and key in grouped.test
    smallest = int(np.argmin(counts))
    per_class = grouped.test_per_class_f1[smallest]
    assert grouped.test["tail_macro_f1"] == pytest.approx(per_class)
    assert grouped.class_names == list(load_dataset("synthetic").class_names)
    with pytest.raises(ConfigurationError, match=r"metric 'tail_macro_f1' needs tail classes"):
        run_trial(_config(metric="tail_macro_f1"))
    with pytest.raises(ConfigurationError, match="head_min > tail_max"):
        run_trial(_config(class_groups=(5, 5)))
    assert not math.isnan(grouped.value)


def test_study_file_rejects_overlapping_class_groups() -> None:
    from losstune.studies.spec import StudyFileError

    with pytest.raises(StudyFileError, match=r"eval.class_groups: `head_min > tail_max`"):
        api.study_from_dict(tiny_study(eval={"class_groups": [8, 8]}))
