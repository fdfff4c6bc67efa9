"""The count-based metrics equal sklearn's to the bit: the same values that computing them with
``sklearn.metrics.f1_score`` / ``accuracy_score`` (``zero_division=0``, absent classes left out
of the macro mean) gives, on random and edge cases, single- and multi-label."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from losstune.objectives.metrics import (
    ClassGroups,
    classification_metrics,
    confusion_counts,
    tune_thresholds,
)


def _one_hot(index: np.ndarray, num_classes: int) -> np.ndarray:
    out = np.zeros((len(index), num_classes), dtype=np.uint8)
    valid = index >= 0
    out[np.flatnonzero(valid), index[valid]] = 1
    return out


def _sklearn_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int,
                     multilabel: bool, groups: dict[str, np.ndarray]) -> dict[str, object]:
    """The metrics as sklearn computes them (what classification_metrics must reproduce)."""
    if multilabel:
        t, p = y_true.astype(np.uint8), y_pred.astype(np.uint8)
        out: dict[str, object] = {"accuracy": float(accuracy_score(t, p))}
    else:
        t, p = _one_hot(y_true, num_classes), _one_hot(y_pred, num_classes)
        out = {"accuracy": float(accuracy_score(y_true, y_pred))}
    present = (t.sum(axis=0) + p.sum(axis=0)) > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for avg in ("micro", "weighted"):
            out[f"{avg}_f1"] = float(f1_score(t, p, average=avg, zero_division=0))
        per_class = f1_score(t, p, average=None, labels=list(range(num_classes)),
                             zero_division=0).astype(float)
    per_class[~present] = np.nan
    defined = per_class[~np.isnan(per_class)]
    out["macro_f1"] = float(defined.mean()) if len(defined) else math.nan
    out["per_class_f1"] = [float(v) for v in per_class]
    for name, idx in groups.items():
        if len(idx) == 0:
            continue
        tg, pg = t[:, idx], p[:, idx]  # micro-F1 of the group, as the code always did it
        denominator = float(tg.sum() + pg.sum())
        out[f"{name}_micro_f1"] = (2 * float(np.sum(tg & pg)) / denominator if denominator
                                   else math.nan)
        group = per_class[idx][~np.isnan(per_class[idx])]
        out[f"{name}_macro_f1"] = float(group.mean()) if len(group) else math.nan
    return out


def _same(ours: dict[str, object], reference: dict[str, object]) -> None:
    assert set(ours) == set(reference)
    for key, want in reference.items():
        got = ours[key]
        if isinstance(want, list):
            assert len(got) == len(want), key  # type: ignore[arg-type]
            for a, b in zip(got, want, strict=True):  # type: ignore[call-overload]
                assert (math.isnan(a) and math.isnan(b)) or a == b, (key, got, want)
        else:
            assert (math.isnan(got) and math.isnan(want)) or got == want, (key, got, want)


GROUPS = {"head": np.array([0, 1]), "medium": np.array([2]), "tail": np.array([3, 4, 5])}


@pytest.mark.parametrize("seed", range(40))
def test_single_label_random_cases_equal_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    c = int(rng.integers(2, 9))
    n = int(rng.integers(1, 60))
    # skewed label use, so that some classes are absent from truth, predictions or both
    weights = rng.dirichlet(np.full(c, 0.4))
    y_true = rng.choice(c, size=n, p=weights)
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.choice(c, size=n))
    if seed % 4 == 0:  # threshold-rule "no class" predictions
        y_pred[rng.random(n) < 0.2] = -1
    groups = {k: v[v < c] for k, v in GROUPS.items()}
    ours = classification_metrics(y_true, y_pred, num_classes=c, multilabel=False,
                                  groups=groups)
    _same(ours, _sklearn_metrics(y_true, y_pred, c, False, groups))


@pytest.mark.parametrize("seed", range(40))
def test_multilabel_random_cases_equal_sklearn(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    c = int(rng.integers(2, 9))
    n = int(rng.integers(1, 60))
    rates = rng.uniform(0.0, 0.6, size=c) * (rng.random(c) < 0.8)  # some classes never true
    y_true = (rng.random((n, c)) < rates).astype(np.uint8)
    flip = rng.random((n, c)) < 0.2
    y_pred = np.where(flip, 1 - y_true, y_true).astype(np.uint8)
    if seed % 3 == 0:
        y_pred[:, int(rng.integers(c))] = 0  # a class never predicted
    groups = {k: v[v < c] for k, v in GROUPS.items()}
    ours = classification_metrics(y_true, y_pred, num_classes=c, multilabel=True,
                                  groups=groups)
    _same(ours, _sklearn_metrics(y_true, y_pred, c, True, groups))


@pytest.mark.parametrize("multilabel", [False, True])
def test_edge_cases_equal_sklearn(multilabel: bool) -> None:
    c = 6
    if multilabel:
        cases = [
            (np.zeros((5, c), np.uint8), np.zeros((5, c), np.uint8)),  # nothing anywhere
            (np.zeros((3, c), np.uint8), np.ones((3, c), np.uint8)),  # only false positives
            (np.ones((3, c), np.uint8), np.zeros((3, c), np.uint8)),  # only misses
            (np.eye(c, dtype=np.uint8), np.eye(c, dtype=np.uint8)),  # perfect
            (np.eye(c, dtype=np.uint8)[:1], np.eye(c, dtype=np.uint8)[1:2]),  # one doc, wrong
        ]
    else:
        cases = [
            (np.array([0, 0, 0]), np.array([0, 0, 0])),  # one class only
            (np.array([1, 2]), np.array([-1, -1])),  # no class predicted at all
            (np.array([5]), np.array([5])),  # one document
            (np.arange(c), np.arange(c)[::-1]),  # every class present, all wrong but two
            (np.array([0, 1, 2, 3]), np.array([4, 4, 5, 5])),  # predicted classes never true
        ]
    groups = {k: v for k, v in ClassGroups(3, 1).assign(np.array([5, 4, 2, 2, 1, 0])).items()}
    for y_true, y_pred in cases:
        ours = classification_metrics(y_true, y_pred, num_classes=c, multilabel=multilabel,
                                      groups=groups)
        _same(ours, _sklearn_metrics(y_true, y_pred, c, multilabel, groups))


def test_confusion_counts_by_hand() -> None:
    tp, true, pred = confusion_counts(np.array([0, 0, 1, 2]), np.array([0, 1, 1, -1]),
                                      num_classes=4, multilabel=False)
    assert tp.tolist() == [1, 1, 0, 0]
    assert true.tolist() == [2, 1, 1, 0]
    assert pred.tolist() == [1, 2, 0, 0]


@pytest.mark.parametrize("seed", range(10))
def test_tuned_thresholds_equal_the_sklearn_search(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, c = 40, 5
    targets = (rng.random((n, c)) < 0.3).astype(np.float32)
    targets[:, 4] = 0  # a class without positives keeps 0.5
    scores = rng.normal(size=(n, c)) + 2 * targets
    grid = np.linspace(0.05, 0.95, 19)
    probs = 1 / (1 + np.exp(-scores))
    want = np.full(c, 0.5)
    for k in range(c):
        if targets[:, k].sum() == 0:
            continue
        f1s = [f1_score(targets[:, k], probs[:, k] > t, zero_division=0) for t in grid]
        want[k] = grid[int(np.argmax(f1s))]
    assert tune_thresholds(scores, targets).tolist() == want.tolist()
