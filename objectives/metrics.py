"""Classification metrics and prediction rules.

Prediction rules (recorded with every metric): ``argmax`` for single-label data, whatever the
loss (a sigmoid-trained head still predicts its top class); ``threshold`` for multi-label data
(``sigmoid(z) > t``, 0.5 by default, optionally tuned per class on validation); ``centroid``
(nearest class centroid of training embeddings) for metric-learning studies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from losstune.objectives.registry import unknown_name_message

#: metric name -> direction. ``loss`` is the validation loss.
METRICS: dict[str, str] = {
    "accuracy": "maximize",
    "micro_f1": "maximize",
    "macro_f1": "maximize",
    "weighted_f1": "maximize",
    "head_micro_f1": "maximize",
    "head_macro_f1": "maximize",
    "medium_micro_f1": "maximize",
    "medium_macro_f1": "maximize",
    "tail_micro_f1": "maximize",
    "tail_macro_f1": "maximize",
    "loss": "minimize",
    "train_seconds": "minimize",
}

GROUPS = ("head", "medium", "tail")


def metric_direction(name: str) -> str:
    if name not in METRICS:
        raise KeyError(unknown_name_message("metric", name, METRICS))
    return METRICS[name]


@dataclass(frozen=True)
class ClassGroups:
    """Head / medium / tail classes by training frequency (Huang et al.: >=35, 9-34, <=8)."""

    head_min: int = 35
    tail_max: int = 8

    def __post_init__(self) -> None:
        for name in ("head_min", "tail_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"`{name} >= 0` must hold for class groups, but got "
                                 f"{name}={value!r}.")
        if self.head_min <= self.tail_max:
            raise ValueError(
                "`head_min > tail_max` must hold for class groups (head >= head_min, tail <= "
                f"tail_max), but got head_min={self.head_min}, tail_max={self.tail_max}."
            )

    def assign(self, train_counts: np.ndarray) -> dict[str, np.ndarray]:
        counts = np.asarray(train_counts)
        return {
            "head": np.flatnonzero(counts >= self.head_min),
            "medium": np.flatnonzero((counts > self.tail_max) & (counts < self.head_min)),
            "tail": np.flatnonzero(counts <= self.tail_max),
        }


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def predict(
    scores: np.ndarray,
    *,
    multilabel: bool,
    rule: str,
    threshold: float | np.ndarray = 0.5,
) -> np.ndarray:
    """Turn ``(n, C)`` scores (logits, or negative distances for ``centroid``) into predictions.

    Returns class indices ``(n,)`` for single-label data, a multi-hot ``(n, C)`` matrix otherwise.
    """
    if rule in ("argmax", "centroid"):
        top = scores.argmax(axis=1)
        if not multilabel:
            return top
        out = np.zeros_like(scores, dtype=np.uint8)
        out[np.arange(len(top)), top] = 1
        return out
    if rule == "threshold":
        hot = (sigmoid(scores) > threshold).astype(np.uint8)
        if not multilabel:
            # Single-label data scored by a threshold: a row with no positive becomes "no class",
            # encoded as -1 (counts as wrong); several positives keep the highest score.
            masked = np.where(hot > 0, scores, -np.inf)
            top = masked.argmax(axis=1)
            top[hot.sum(axis=1) == 0] = -1
            return top
        return hot
    raise ValueError(f"Unknown prediction rule {rule!r}; expected argmax, threshold or centroid.")


def tune_thresholds(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-class thresholds in {0.05, ..., 0.95} that maximise each class's validation F1
    (binary F1 with ``zero_division=0``, as sklearn's ``f1_score``; the first best threshold
    wins a tie)."""
    grid = np.linspace(0.05, 0.95, 19)
    probs = sigmoid(scores)
    best = np.full(scores.shape[1], 0.5)
    for c in range(scores.shape[1]):
        truth = np.asarray(targets[:, c]) > 0
        if truth.sum() == 0:
            continue
        hot = probs[:, c][None, :] > grid[:, None]  # (thresholds, n)
        tp = (hot & truth[None, :]).sum(axis=1)
        f1s = _f1_from_counts(tp, np.full(len(grid), truth.sum()), hot.sum(axis=1))
        best[c] = grid[int(np.argmax(f1s))]
    return best


def _f1_from_counts(tp: np.ndarray, true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-class F1 ``2 tp / (true + pred)`` from integer counts, 0 where the class is neither
    true nor predicted: sklearn's arithmetic (``zero_division=0``), so equal to the bit."""
    numerator = 2.0 * np.asarray(tp, dtype=np.int64).astype(np.float64)
    denominator = (np.asarray(true, dtype=np.int64).astype(np.float64)
                   + np.asarray(pred, dtype=np.int64).astype(np.float64))
    empty = denominator == 0
    denominator[empty] = 1.0
    out = numerator / denominator
    out[empty] = 0.0
    return out


def confusion_counts(
    y_true: np.ndarray, y_pred: np.ndarray, *, num_classes: int, multilabel: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class true positives, true counts and predicted counts (int64, one per class).

    Single-label: class indices (a prediction of -1 predicts no class); multi-label: multi-hot
    ``(n, C)`` matrices."""
    if multilabel:
        t = np.asarray(y_true) > 0
        p = np.asarray(y_pred) > 0
        return ((t & p).sum(axis=0, dtype=np.int64), t.sum(axis=0, dtype=np.int64),
                p.sum(axis=0, dtype=np.int64))
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    true = np.bincount(y_true[y_true >= 0], minlength=num_classes)[:num_classes]
    pred = np.bincount(y_pred[y_pred >= 0], minlength=num_classes)[:num_classes]
    hit = y_true[(y_true == y_pred) & (y_true >= 0)]
    tp = np.bincount(hit, minlength=num_classes)[:num_classes]
    return tp.astype(np.int64), true.astype(np.int64), pred.astype(np.int64)


def classification_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    num_classes: int,
    multilabel: bool,
    groups: dict[str, np.ndarray] | None = None,
) -> dict[str, float | list[float]]:
    """Scores of one split's predictions: sklearn's ``f1_score`` with ``zero_division=0``,
    computed from per-class counts (equal to sklearn's values to the bit; a test checks it).

    * ``accuracy``: share of exact matches; for multi-label data that is *subset* accuracy
      (every label of the document right).
    * ``micro_f1``, ``weighted_f1``: over all classes.
    * ``per_class_f1``: one value per class; NaN for a class that is neither true nor predicted
      anywhere in the split (its F1 is 0/0, undefined).
    * ``macro_f1``: mean of the defined per-class values, i.e. over the classes that occur in the
      split's truth or predictions (sklearn's rule for single-label data, applied to
      multi-label data too), so a class missing from a small split does not count as a zero.
    * with ``groups`` (``ClassGroups.assign``): ``<group>_micro_f1`` (micro-F1 over the group's
      classes) and ``<group>_macro_f1`` (mean of the group's defined per-class values) for
      head, medium and tail. A group with no classes gets no keys; a value that is undefined on
      this split (no true and no predicted positive in the group) is NaN.

    Single-label predictions of -1 ("no class", from a threshold rule) count as wrong and
    predict no class.
    """
    if multilabel:
        t, p = np.asarray(y_true).astype(np.uint8), np.asarray(y_pred).astype(np.uint8)
        out: dict[str, float | list[float]] = {"accuracy": float(np.mean(np.all(t == p,
                                                                               axis=1)))}
    else:
        out = {"accuracy": float(np.mean(y_true == y_pred))}
    tp, true, pred = confusion_counts(y_true, y_pred, num_classes=num_classes,
                                      multilabel=multilabel)
    present = (true + pred) > 0
    out["micro_f1"] = float(_f1_from_counts(tp.sum(keepdims=True), true.sum(keepdims=True),
                                            pred.sum(keepdims=True))[0])
    per_class = _f1_from_counts(tp, true, pred)
    out["weighted_f1"] = _weighted_mean(per_class, true)
    per_class[~present] = np.nan
    out["macro_f1"] = _nanmean(per_class)
    out["per_class_f1"] = [float(v) for v in per_class]
    if groups is not None:
        for name in GROUPS:
            idx = np.asarray(groups.get(name, np.arange(0)), dtype=np.int64)
            if len(idx) == 0:
                continue
            group_tp = float(np.sum(tp[idx]))
            denominator = float(true[idx].sum() + pred[idx].sum())
            out[f"{name}_micro_f1"] = 2 * group_tp / denominator if denominator else math.nan
            out[f"{name}_macro_f1"] = _nanmean(per_class[idx])
    return out


def _weighted_mean(per_class: np.ndarray, weights: np.ndarray) -> float:
    """sklearn's ``average="weighted"``: per-class values weighted by their true counts; an
    unweighted mean when no class is true."""
    if len(per_class) == 0:
        return math.nan
    if weights.sum() == 0:
        return float(np.average(per_class))
    return float(np.average(per_class, weights=weights))


def _nanmean(values: np.ndarray) -> float:
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if len(defined) else math.nan


def group_metric_names(groups: dict[str, np.ndarray]) -> list[str]:
    """The group metrics that ``classification_metrics`` reports for these groups."""
    return [f"{g}_{kind}_f1" for g in GROUPS if len(groups.get(g, ())) for kind in
            ("micro", "macro")]


def scalar_metrics(metrics: dict[str, float | list[float]]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if not isinstance(v, Sequence)}
