"""``run_trial(extra_rules=...)``: the kept model scored on test under other prediction rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from losstune.objectives.config import (
    DataConfig,
    EncoderConfig,
    LossConfig,
    LossTerm,
    TrainConfig,
    TrialConfig,
)
from losstune.objectives.data import load_dataset
from losstune.objectives.metrics import ClassGroups, classification_metrics, predict
from losstune.objectives.objective import result_attributes
from losstune.objectives.training import ConfigurationError, run_trial


def _config(**data_options: object) -> TrialConfig:
    return TrialConfig(data=DataConfig(name="synthetic", options=dict(data_options)),
                       encoder=EncoderConfig(name="hashing"),
                       loss=LossConfig(terms=[LossTerm(name="bce")]),
                       train=TrainConfig(epochs=3, lr=0.05, threads=1))


def test_extra_rules_score_the_kept_model_under_each_rule() -> None:
    config = _config()
    plain = run_trial(config)
    result = run_trial(config, extra_rules=["argmax", "threshold"], keep_state=True)
    assert plain.test_by_rule == {}
    assert result.value == plain.value and result.test == plain.test  # nothing else moves
    # single-label data: the study's own rule is argmax, so that entry repeats result.test
    assert result.prediction_rule == "argmax"
    assert result.test_by_rule["argmax"] == result.test
    # recompute the threshold rule from the kept weights
    from losstune.objectives.models import build_model

    dataset = load_dataset("synthetic")
    from losstune.objectives.training import prepare_data

    data = prepare_data(config)
    model = build_model("linear", {}, {"in_dim": data.in_dim, "num_classes": 4})
    model.load_state_dict(result.state_dict)
    model.eval()
    with torch.no_grad():
        logits = model({"embeddings": data.inputs["test"]["embeddings"]}).logits.numpy()
    pred = predict(logits, multilabel=False, rule="threshold", threshold=0.5)
    groups = ClassGroups().assign(dataset.class_counts("train"))
    expected = classification_metrics(dataset.test.labels, pred, num_classes=4,
                                      multilabel=False, groups=groups)
    assert result.test_by_rule["threshold"]["macro_f1"] == pytest.approx(expected["macro_f1"])
    assert np.isfinite(result.test_by_rule["threshold"]["accuracy"])
    attrs = result_attributes(result)
    assert attrs["metric.test.threshold.macro_f1"] == result.test_by_rule["threshold"]["macro_f1"]
    assert attrs["metric.test.argmax.macro_f1"] == attrs["metric.test.macro_f1"]


def test_unknown_extra_rule_is_rejected_before_training() -> None:
    with pytest.raises(ConfigurationError, match=r"extra prediction rule\(s\) \['centroid'\]"):
        run_trial(_config(), extra_rules=["centroid"])
