"""Metrics on small hand-computed cases; sklearn is the reference where its rule is the same."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from losstune.objectives.metrics import (
    ClassGroups,
    classification_metrics,
    group_metric_names,
    predict,
)


def test_single_label_by_hand_and_against_sklearn() -> None:
    y_true = np.array([0, 0, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 2, 2, 0])
    m = classification_metrics(y_true, y_pred, num_classes=4, multilabel=False)
    # class 0: P 1/2 R 1/2 -> 0.5; class 1: P 1/2 R 1 -> 2/3; class 2: P 1 R 2/3 -> 0.8;
    # class 3 never occurs in truth or predictions: undefined, not averaged
    assert m["per_class_f1"][:3] == pytest.approx([0.5, 2 / 3, 0.8])
    assert math.isnan(m["per_class_f1"][3])
    assert m["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 0.8) / 3)
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert m["accuracy"] == pytest.approx(4 / 6) == m["micro_f1"]
    assert m["weighted_f1"] == pytest.approx(f1_score(y_true, y_pred, average="weighted"))


def test_a_predicted_but_absent_class_counts_as_zero() -> None:
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 2, 1, 1])  # class 2 predicted once, never true
    m = classification_metrics(y_true, y_pred, num_classes=3, multilabel=False)
    assert m["per_class_f1"] == pytest.approx([2 / 3, 1.0, 0.0])
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro",
                                                   zero_division=0))


def test_no_class_predictions_count_as_wrong() -> None:
    y_true = np.array([0, 1, 1])
    y_pred = np.array([0, -1, 1])  # threshold rule: no class above the threshold
    m = classification_metrics(y_true, y_pred, num_classes=2, multilabel=False)
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["per_class_f1"] == pytest.approx([1.0, 2 / 3])  # class 1: P 1, R 1/2
    assert m["micro_f1"] == pytest.approx(2 * 2 / (2 + 3))  # tp 2, predicted 2, true 3


def test_multilabel_subset_accuracy_micro_macro() -> None:
    t = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 0, 0]], dtype=np.uint8)
    p = np.array([[1, 0, 1, 0], [0, 1, 1, 0], [1, 0, 0, 0]], dtype=np.uint8)
    m = classification_metrics(t, p, num_classes=4, multilabel=True)
    assert m["accuracy"] == pytest.approx(1 / 3)  # subset accuracy: only row 0 exact
    assert m["accuracy"] == pytest.approx(accuracy_score(t, p))
    # tp 4, fp 1, fn 1 -> micro 8/10
    assert m["micro_f1"] == pytest.approx(0.8) == pytest.approx(
        f1_score(t, p, average="micro"))
    # class 0: 1; class 1: P 1 R 1/2 -> 2/3; class 2: P 1/2 R 1 -> 2/3; class 3 undefined
    assert m["per_class_f1"][:3] == pytest.approx([1.0, 2 / 3, 2 / 3])
    assert math.isnan(m["per_class_f1"][3])
    assert m["macro_f1"] == pytest.approx(7 / 9)
    assert m["macro_f1"] == pytest.approx(f1_score(t, p, average="macro", labels=[0, 1, 2]))


def test_group_metrics_by_hand() -> None:
    groups = ClassGroups(head_min=30, tail_max=3).assign(np.array([50, 20, 2, 1]))
    assert {k: v.tolist() for k, v in groups.items()} == {"head": [0], "medium": [1],
                                                          "tail": [2, 3]}
    t = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 0, 1]], dtype=np.uint8)
    p = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 1]], dtype=np.uint8)
    m = classification_metrics(t, p, num_classes=4, multilabel=True, groups=groups)
    assert m["head_micro_f1"] == pytest.approx(1.0) == m["head_macro_f1"]
    assert m["medium_micro_f1"] == pytest.approx(2 / 3) == m["medium_macro_f1"]
    # tail: class 2 tp 0 fn 1 -> 0; class 3 tp 1 -> 1; micro tp 1, true 2, predicted 1 -> 2/3
    assert m["tail_macro_f1"] == pytest.approx(0.5)
    assert m["tail_micro_f1"] == pytest.approx(2 / 3)
    assert m["tail_micro_f1"] == pytest.approx(f1_score(t[:, 2:], p[:, 2:], average="micro"))


def test_a_group_without_classes_has_no_metrics_and_undefined_is_nan() -> None:
    groups = ClassGroups().assign(np.array([100, 90, 40]))  # all head
    assert group_metric_names(groups) == ["head_micro_f1", "head_macro_f1"]
    y = np.array([0, 1, 2])
    m = classification_metrics(y, y, num_classes=3, multilabel=False, groups=groups)
    assert "tail_macro_f1" not in m and "medium_micro_f1" not in m
    assert m["head_macro_f1"] == 1.0
    groups = {"head": np.array([0]), "medium": np.arange(0), "tail": np.array([1])}
    m = classification_metrics(np.array([0, 0]), np.array([0, 0]), num_classes=2,
                               multilabel=False, groups=groups)
    assert math.isnan(m["tail_macro_f1"]) and math.isnan(m["tail_micro_f1"])


def test_class_groups_need_head_above_tail() -> None:
    with pytest.raises(ValueError, match="head_min > tail_max"):
        ClassGroups(head_min=8, tail_max=8)
    with pytest.raises(ValueError, match="tail_max >= 0"):
        ClassGroups(head_min=8, tail_max=-1)
    g = ClassGroups(head_min=35, tail_max=8).assign(np.array([35, 34, 9, 8, 0]))
    assert g["head"].tolist() == [0] and g["medium"].tolist() == [1, 2]
    assert g["tail"].tolist() == [3, 4]


def test_threshold_rule_is_strictly_above_half_and_argmax_for_single_label() -> None:
    scores = np.array([[0.0, 2.0, -1.0], [0.1, -3.0, 0.2]])
    hot = predict(scores, multilabel=True, rule="threshold")
    assert hot.tolist() == [[0, 1, 0], [1, 0, 1]]  # sigmoid(0) = 0.5 is not > 0.5
    assert predict(scores, multilabel=False, rule="argmax").tolist() == [1, 2]
    assert predict(scores, multilabel=False, rule="threshold").tolist() == [1, 2]
    low = np.array([[-1.0, -2.0]])
    assert predict(low, multilabel=False, rule="threshold").tolist() == [-1]
    per_class = predict(scores, multilabel=True, rule="threshold",
                        threshold=np.array([0.4, 0.99, 0.5]))
    assert per_class.tolist() == [[1, 0, 0], [1, 0, 1]]
